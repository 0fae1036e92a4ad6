"""Publishing a run: its tables (Markdown, LaTeX, CSV), per-sequence tables, plots and HTML report,
written from plain values (the per-frame table, the summary, the missing metrics, the methods' roles,
the run metadata, the config text, the protocols' descriptions and the bootstrap settings).

The engine (:mod:`benchmark.engine.outputs`) writes the result files and hands these values to
:func:`publish`; ``cabench tables`` renders the same tables through :func:`table_files`, so the
marks -> uncertainty -> render sequence is written once.

- Per-sequence views (``summary_per_sequence.csv``, ``table1_per_sequence.*``, ...) when a dataset
  of the run has several sequences.
- With several protocols the plots are drawn per protocol (file names prefixed with the protocol);
  tables and the report show a row per (dataset, method, protocol). Every plot of a run gives a
  method the same colour, assigned once from the run's method list (``methods``).
- The summaries' intervals and the tables' marks use the run's bootstrap settings; the marks are
  computed once here and handed to the tables and the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.results.bootstrap import BootstrapSettings
from benchmark.results.files import atomic_write_csv, atomic_write_text
from benchmark.results.summary import missing_by_method, summarize
from reports.runinfo import policy_notes

# reports.tables (and with it the metric registry and torch) is imported where a table is made: a
# command imports this module before it knows whether the run's outputs are already up to date.


def several_sequences(per_frame: pd.DataFrame) -> bool:
    """Whether some dataset of the run has more than one sequence (a per-sequence view says more)."""
    return bool(len(per_frame)) and bool((per_frame.groupby("dataset")["sequence"].nunique() > 1).any())


def table_files(per_frame: pd.DataFrame, summary: pd.DataFrame, missing: pd.DataFrame | None,
                roles: Mapping[str, str], bootstrap: BootstrapSettings, notes: Sequence[str] = (),
                ci: str | None = None, paper: bool = False) -> tuple[dict[str, str], pd.DataFrame]:
    """The tables of ``summary`` ({file name: text}) with the marks of ``per_frame`` (the paired
    comparisons with the best, at the bootstrap's level), and those marks."""
    from reports import tables

    marks = tables.table_marks(per_frame, summary, roles, bootstrap)
    files = tables.render_all(summary, missing, paper=paper, roles=roles,
                              uncertainty=tables.Uncertainty(ci, marks, bootstrap), notes=list(notes))
    return files, marks


def publish(out: str | Path, *, per_frame: pd.DataFrame, summary: pd.DataFrame, missing: pd.DataFrame,
            roles: Mapping[str, str], methods: Sequence[str], metadata: Mapping[str, Any] | None, config_text: str,
            protocols: Mapping[str, str], bootstrap: BootstrapSettings, plots: bool = True,
            report: bool = True, sets: pd.DataFrame | None = None) -> list[Path]:
    """Write the tables, the per-sequence tables (when a dataset has several sequences), the set values'
    tables (``sets``: the rows of ``set_metrics.csv``; :mod:`reports.sets`), the plots (``out/plots``)
    and ``report.html`` of a run into ``out``; returns the files written.

    roles: method -> role (``method`` or ``sanity``); methods: the run's method names in order (the
    plots' colours); protocols: protocol id -> its description (the report's protocol section)."""
    out = Path(out)
    notes = policy_notes(metadata or {})
    written = []
    files, marks = table_files(per_frame, summary, missing_by_method(missing), roles, bootstrap, notes)
    written += [atomic_write_text(out / name, text) for name, text in files.items()]
    per_sequence = per_sequence_marks = None
    if several_sequences(per_frame):
        per_sequence = summarize(per_frame, by=("dataset", "sequence", "method"), bootstrap=bootstrap)
        written.append(atomic_write_csv(per_sequence, out / "summary_per_sequence.csv"))
        files, per_sequence_marks = table_files(per_frame, per_sequence, missing, roles, bootstrap, notes)
        written += [atomic_write_text(out / name, text) for name, text in files.items()]
    if sets is not None:
        from reports.sets import set_files

        written += [atomic_write_text(out / name, text) for name, text in set_files(sets, summary).items()]
    names = {path.name for path in written}
    for stale in [*out.glob("table[12]*.*"), *out.glob("metrics*.*"), *out.glob("set_metrics.md")]:  # a table an earlier run of the folder had
        if stale.suffix in (".md", ".tex", ".csv") and stale.name not in names and "_paper" not in stale.name:
            stale.unlink()
    if plots and len(per_frame):
        from reports.plots import draw_run

        written += draw_run(per_frame, summary, out / "plots", roles, methods=list(methods))
    if report:
        from reports.html import write_report

        written.append(write_report(out, config_text=config_text, protocols=dict(protocols), bootstrap=bootstrap,
                                    summary=summary, marks=marks, roles=roles, per_sequence=per_sequence,
                                    per_sequence_marks=per_sequence_marks))
    return written
