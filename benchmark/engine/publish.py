"""Writing a merged run's outputs into its folder: the result table and its summary, the missing
metrics, the config, the tables (Markdown, LaTeX, CSV), the plots and the HTML report.

With several protocols the plots are drawn per protocol (file names prefixed with the protocol);
tables and the report show a row per (dataset, method, protocol). The summary's intervals and the
tables' marks use the run's bootstrap settings (``[run] bootstrap``); both are computed once here
and handed to the tables and the report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.config import RunConfig, to_toml
from benchmark.results.files import atomic_write_csv, atomic_write_text
from benchmark.results.folder import RunFolder
from benchmark.results.summary import missing_by_method, summarize


def protocol_descriptions(protocols: list[str]) -> dict[str, str]:
    from metrics.protocols import get_protocol

    return {p: get_protocol(p).description for p in protocols}


def write_outputs(folder: RunFolder, config: RunConfig, per_frame: pd.DataFrame, missing: pd.DataFrame,
                  protocols: list[str], plots: bool = True, report: bool = True,
                  summary: pd.DataFrame | None = None) -> list[Path]:
    """Write the result table, its summary (``summary``, or computed here), the tables, plots and
    report into the run folder."""
    from reports import tables

    out = folder.path
    if summary is None:
        summary = summarize(per_frame, bootstrap=config.bootstrap)
    config_text = to_toml(config)
    files = [atomic_write_csv(per_frame, out / "per_frame.csv"), atomic_write_csv(summary, out / "summary.csv"),
             atomic_write_csv(missing, out / "missing.csv"), atomic_write_text(out / "config.toml", config_text)]
    marks = tables.table_marks(per_frame, summary, bootstrap=config.bootstrap)
    uncertainty = tables.Uncertainty(None, marks, config.bootstrap)
    for name, text in tables.render_all(summary, missing_by_method(missing), uncertainty=uncertainty).items():
        files.append(atomic_write_text(out / name, text))
    if plots and len(per_frame):
        from reports.plots import run_plots

        several = len(protocols) > 1
        for protocol in protocols:
            rows = per_frame[per_frame["protocol"] == protocol]
            if len(rows):
                files += run_plots(rows, summary[summary["protocol"] == protocol], folder.plots,
                                   prefix=protocol if several else "")
    if report:
        from reports.html import write_report

        files.append(write_report(out, config_text=config_text, protocols=protocol_descriptions(protocols),
                                  bootstrap=config.bootstrap, summary=summary, marks=marks))
    return files
