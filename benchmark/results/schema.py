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
- Methods (``methods.csv``, :data:`METHODS_COLUMNS`): each method's role and adapter. The role is
  ``method`` (a competitor) or ``sanity`` (a check of the metrics, e.g. the ground truth degraded on
  purpose): tables, plots, the report and significance marks show sanity rows apart and never call
  one the best (:func:`is_sanity` is the one predicate). A run without the file has only methods.
- Run metadata (``metadata.json``): when, with what and on what the run was made, the dataset
  summary, the protocols' definitions and the mask and alignment policies, with the frames each
  (method, sequence) was evaluated on (written by the engine, read by :func:`read_metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from metrics.errors import InputError

KEY_COLUMNS = ("dataset", "sequence", "method", "frame", "protocol")
MISSING_COLUMNS = ("dataset", "sequence", "method", "protocol", "metric", "reason")
SUMMARY_COLUMNS = ("dataset", "method", "metric", "protocol", "mean", "std", "count", "frames", "coverage", "ci_low",
                   "ci_high", "n_frames", "n_sequences")
METHODS_COLUMNS = ("method", "role", "adapter")
TIME_COLUMN = "time_s"
METHOD_ROLE, SANITY_ROLE = "method", "sanity"
ROLES = (METHOD_ROLE, SANITY_ROLE)


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
    check_values(per_frame, path)
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


def check_values(per_frame: pd.DataFrame, path: Path) -> None:
    """Make sure a result table's ``frame`` column holds integers and its value columns numbers (an
    empty cell is NaN, ``inf`` a number: PSNR of identical frames); the first cell that is not is an
    InputError naming the file, its line and its column. Columns read as text become numbers."""
    for column in ["frame", *value_columns(per_frame)]:
        values = per_frame[column]
        numbers = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_bool_dtype(values) else values * np.nan
        if column == "frame":
            bad = numbers.isna() | (numbers % 1 != 0)
            what = "an integer frame id"
        else:
            bad = numbers.isna() & values.notna()
            what = "a number (or empty)"
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}: line {row + 2}, column {column}: {values.iloc[row]!r} is not {what}")
        per_frame[column] = numbers.astype("int64") if column == "frame" else numbers


def is_sanity(method: str, roles: Mapping[str, str] | None) -> bool:
    """Whether ``method`` is a sanity check (shown apart, never the best) rather than a competitor."""
    return bool(roles) and roles.get(str(method), METHOD_ROLE) == SANITY_ROLE


def methods_table(records: Sequence[dict]) -> pd.DataFrame:
    """``methods.csv``: one row per method (method, role, adapter; adapter empty for stored frames)."""
    return pd.DataFrame(list(records), columns=list(METHODS_COLUMNS))


def read_methods(folder: str | Path) -> dict[str, str]:
    """{method: role} of a run folder (its ``methods.csv``); a run without the file: every method a
    ``method``, so the mapping is empty (:func:`is_sanity` is False for every name)."""
    from benchmark.results.files import read_csv

    path = Path(folder) / "methods.csv"
    if not path.exists():
        return {}
    table = read_csv(path, "methods table")
    if not {"method", "role"} <= set(table.columns):
        raise InputError(f"{path}: not a methods table (needs columns method, role)")
    unknown = sorted(set(table["role"].astype(str)) - set(ROLES))
    if unknown:
        raise InputError(f"{path}: unknown role {', '.join(unknown)} (known: {', '.join(ROLES)})")
    return {str(m): str(r) for m, r in zip(table["method"], table["role"])}


def read_metadata(folder: str | Path) -> dict:
    """The run metadata of a run folder (its ``metadata.json``); {} for a run written without it."""
    import json

    path = Path(folder) / "metadata.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read the run metadata ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not run metadata (a JSON object)")
    return data
