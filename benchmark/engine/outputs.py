"""Writing a merged run's result files into its folder: the result table and its summary, the missing
metrics, the methods' roles, the run metadata and the config; then handing the same values, as plain
values, to a publisher (:func:`reports.publish.publish`, given by the command that runs) for the
tables, plots and report. The engine never imports :mod:`reports`: data flows one way.

- ``methods.csv``: each method's role (``method``, or ``sanity`` for checks of the metrics such as
  the synthetic degradations) and adapter; tables, plots and the report show sanity rows apart.
- ``metadata.json`` (:mod:`benchmark.engine.metadata`): date, version, commit, host, threads,
  libraries, datasets, protocol definitions, mask and alignment policies; its policy sentences go
  under every table.
The summary's intervals use the run's bootstrap settings (``[run] bootstrap``); it is computed once
and handed to the publisher.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.config import RunConfig, to_toml
from benchmark.engine.methods import method_roles
from benchmark.results.files import atomic_write_csv, atomic_write_text
from benchmark.results.folder import RunFolder
from benchmark.results.schema import methods_table
from benchmark.results.summary import summarize

# publish(out, *, per_frame, summary, missing, roles, methods, metadata, config_text, protocols, bootstrap,
#         plots, report, sets) -> the files written (reports.publish.publish)
Publisher = Callable[..., list[Path]]


def protocol_descriptions(protocols: list[str]) -> dict[str, str]:
    from metrics.protocols import get_protocol

    return {p: get_protocol(p).description for p in protocols}


def write_outputs(folder: RunFolder, config: RunConfig, per_frame: pd.DataFrame, missing: pd.DataFrame,
                  protocols: list[str], plots: bool = True, report: bool = True,
                  summary: pd.DataFrame | None = None, metadata: dict[str, Any] | None = None,
                  publish: Publisher | None = None, sets: pd.DataFrame | None = None) -> list[Path]:
    """Write the result table, its summary (``summary``, or computed here), the methods' roles, the
    metadata (:func:`benchmark.engine.metadata.run_metadata`) and the config into the run folder, then,
    when ``publish`` is given, the tables (with the set values ``sets``, the rows of
    :mod:`benchmark.engine.sets`, when the run has any), plots (``plots``) and report (``report``) through it."""
    out = folder.path
    if summary is None:
        summary = summarize(per_frame, bootstrap=config.bootstrap)
    config_text = to_toml(config)  # its paths are absolute (the run resolved them)
    methods = methods_table(method_roles(config))
    files = [atomic_write_csv(per_frame, out / "per_frame.csv"), atomic_write_csv(summary, out / "summary.csv"),
             atomic_write_csv(missing, out / "missing.csv"), atomic_write_csv(methods, out / "methods.csv"),
             atomic_write_text(out / "config.toml", config_text)]
    if metadata is not None:
        files.append(atomic_write_text(out / "metadata.json", json.dumps(metadata, indent=1, default=str) + "\n"))
    if publish is not None:
        files += publish(out, per_frame=per_frame, summary=summary, missing=missing,
                         roles=dict(zip(methods["method"], methods["role"])), methods=list(methods["method"]),
                         metadata=metadata, config_text=config_text, protocols=protocol_descriptions(protocols),
                         bootstrap=config.bootstrap, plots=plots, report=report,
                         **({"sets": sets} if sets is not None else {}))
    return files
