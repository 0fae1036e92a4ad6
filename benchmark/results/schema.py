"""The one result schema every run writes and every report reads.

- Result table (``per_frame.csv``): one row per (dataset, sequence, method, protocol, frame), the
  key columns :data:`KEY_COLUMNS` first, then one column per metric column (in the order the
  metrics were asked for; a metric may write several columns), then the runtime ``time_s`` where a
  method was rendered. A value a metric does not define for a frame (the first frame of a pair
  metric, a frame without a face) is empty (NaN). Aggregates are computed from it, never stored
  in it.
- Missing records (``missing.csv``, :data:`MISSING_COLUMNS`): a metric that could not run for a
  (dataset, sequence, method, protocol), with the reason (a weight file absent, a protocol without
  that metric); such a metric has no values, never a number standing in for one.
- Summary (``summary.csv``, :data:`SUMMARY_COLUMNS`, see :mod:`benchmark.results.summary`): per (dataset,
  method, protocol, metric column) the mean over frames with its block-bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from metrics.errors import InputError

KEY_COLUMNS = ("dataset", "sequence", "method", "frame", "protocol")
MISSING_COLUMNS = ("dataset", "sequence", "method", "protocol", "metric", "reason")
SUMMARY_COLUMNS = ("dataset", "method", "metric", "protocol", "mean", "std", "count", "frames", "coverage", "ci_low",
                   "ci_high", "n_frames", "n_sequences")
TIME_COLUMN = "time_s"


def value_columns(per_frame: pd.DataFrame) -> list[str]:
    """The metric (and runtime) columns of a result table, in its order."""
    return [c for c in per_frame.columns if c not in KEY_COLUMNS]


def result_table(tables: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """Rows of several pairs in the schema's column order: keys, ``columns`` (those present), the rest."""
    if not tables:
        return pd.DataFrame(columns=list(KEY_COLUMNS))
    frame = pd.concat(tables, ignore_index=True)
    values = [c for c in frame.columns if c not in KEY_COLUMNS]
    ordered = [c for c in columns if c in values and c != TIME_COLUMN]
    ordered += [c for c in values if c not in ordered and c != TIME_COLUMN]
    ordered += [TIME_COLUMN] if TIME_COLUMN in values else []
    return frame[[*KEY_COLUMNS, *ordered]]


def missing_table(records: Sequence[dict]) -> pd.DataFrame:
    return pd.DataFrame(list(records), columns=list(MISSING_COLUMNS))


def read_run(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(result table, missing records) of a run folder; errors name the file."""
    from benchmark.results.files import read_csv

    folder = Path(folder)
    path = folder / "per_frame.csv"
    if not path.exists():
        raise InputError(f"{path}: no per_frame.csv in the run folder (run cabench run, eval or demo first)")
    per_frame = read_csv(path, "result table")
    needed = {"dataset", "method", "frame", "protocol"}
    if not needed <= set(per_frame.columns):
        raise InputError(f"{path}: not a result table (needs columns {', '.join(sorted(needed))})")
    missing_path = folder / "missing.csv"
    missing = missing_table([])
    if missing_path.exists() and missing_path.stat().st_size:
        missing = read_csv(missing_path, "missing-metric table")
        if not {"dataset", "method", "metric", "reason"} <= set(missing.columns):
            raise InputError(f"{missing_path}: not a missing-metric table (needs dataset, method, metric, reason)")
        for column in MISSING_COLUMNS:
            if column not in missing:
                missing[column] = ""
        missing = missing[list(MISSING_COLUMNS)].fillna("")
    return per_frame, missing
