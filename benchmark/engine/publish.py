"""Writing a merged run's outputs into its folder: the result table and its summaries, the missing
metrics, the methods' roles, the run metadata, the config, the tables (Markdown, LaTeX, CSV), the
plots and the HTML report.

- ``methods.csv``: each method's role (``method``, or ``sanity`` for checks of the metrics such as
  the synthetic degradations) and adapter; tables, plots and the report show sanity rows apart.
- ``metadata.json`` (:mod:`benchmark.engine.metadata`): date, version, commit, host, threads,
  libraries, datasets, protocol definitions, mask and alignment policies; its policy sentences go
  under every table.
- Per-sequence views (``summary_per_sequence.csv``, ``table1_per_sequence.*``, ...) when a dataset
  of the run has several sequences.
With several protocols the plots are drawn per protocol (file names prefixed with the protocol);
tables and the report show a row per (dataset, method, protocol). Every plot of a run gives a
method the same colour, assigned once from the run's method list. The summaries' intervals and the
tables' marks use the run's bootstrap settings (``[run] bootstrap``); both are computed once here
and handed to the tables and the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.config import RunConfig, to_toml
from benchmark.engine.methods import method_roles
from benchmark.results.files import atomic_write_csv, atomic_write_text
from benchmark.results.folder import RunFolder
from benchmark.results.schema import methods_table
from benchmark.results.summary import missing_by_method, summarize


def protocol_descriptions(protocols: list[str]) -> dict[str, str]:
    from metrics.protocols import get_protocol

    return {p: get_protocol(p).description for p in protocols}


def several_sequences(per_frame: pd.DataFrame) -> bool:
    """Whether some dataset of the run has more than one sequence (a per-sequence view says more)."""
    return bool(len(per_frame)) and bool((per_frame.groupby("dataset")["sequence"].nunique() > 1).any())


def write_outputs(folder: RunFolder, config: RunConfig, per_frame: pd.DataFrame, missing: pd.DataFrame,
                  protocols: list[str], plots: bool = True, report: bool = True,
                  summary: pd.DataFrame | None = None, metadata: dict[str, Any] | None = None) -> list[Path]:
    """Write the result table, its summaries (``summary``, or computed here), the methods' roles, the
    metadata, the tables, plots and report into the run folder (``metadata``:
    :func:`benchmark.engine.metadata.run_metadata`)."""
    from reports import tables
    from reports.runinfo import policy_notes

    out = folder.path
    if summary is None:
        summary = summarize(per_frame, bootstrap=config.bootstrap)
    config_text = to_toml(config)
    methods = methods_table(method_roles(config))
    roles = dict(zip(methods["method"], methods["role"]))
    notes = policy_notes(metadata or {})
    files = [atomic_write_csv(per_frame, out / "per_frame.csv"), atomic_write_csv(summary, out / "summary.csv"),
             atomic_write_csv(missing, out / "missing.csv"), atomic_write_csv(methods, out / "methods.csv"),
             atomic_write_text(out / "config.toml", config_text)]
    if metadata is not None:
        files.append(atomic_write_text(out / "metadata.json", json.dumps(metadata, indent=1, default=str) + "\n"))
    marks = tables.table_marks(per_frame, summary, roles, config.bootstrap)
    uncertainty = tables.Uncertainty(None, marks, config.bootstrap)
    for name, text in tables.render_all(summary, missing_by_method(missing), roles=roles, uncertainty=uncertainty,
                                        notes=notes).items():
        files.append(atomic_write_text(out / name, text))
    written = {path.name for path in files}
    per_sequence = per_sequence_marks = None
    if several_sequences(per_frame):
        per_sequence = summarize(per_frame, by=("dataset", "sequence", "method"), bootstrap=config.bootstrap)
        per_sequence_marks = tables.table_marks(per_frame, per_sequence, roles, config.bootstrap)
        files.append(atomic_write_csv(per_sequence, out / "summary_per_sequence.csv"))
        by_sequence = tables.Uncertainty(None, per_sequence_marks, config.bootstrap)
        for name, text in tables.render_all(per_sequence, missing, roles=roles, uncertainty=by_sequence,
                                            notes=notes).items():
            files.append(atomic_write_text(out / name, text))
            written.add(name)
    for stale in [*out.glob("table[12]*.*"), *out.glob("metrics*.*")]:  # a table an earlier run of the folder had
        if stale.suffix in (".md", ".tex", ".csv") and stale.name not in written and "_paper" not in stale.name:
            stale.unlink()
    if plots and len(per_frame):
        from reports.plots import draw_run

        files += draw_run(per_frame, summary, folder.plots, roles, methods=list(methods["method"]))
    if report:
        from reports.html import write_report

        files.append(write_report(out, config_text=config_text, protocols=protocol_descriptions(protocols),
                                  bootstrap=config.bootstrap, summary=summary, marks=marks, roles=roles,
                                  per_sequence=per_sequence, per_sequence_marks=per_sequence_marks))
    return files
