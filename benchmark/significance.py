"""Statistics of a result table: an interval for every summary mean, paired comparisons of methods.

The kernels are in :mod:`benchmark.statistics`; this module cuts a per-frame result table (one row
per dataset, sequence, method, frame and protocol, one column per metric column) into the per-frame
series they take. Conventions:

- A summary value is the mean over the defined frames of one (dataset, protocol, method, column);
  its sequences are the ``sequence`` values of those rows, each series in frame order (a table
  without a ``sequence`` column is one sequence; one without ``dataset`` one dataset).
- Two methods are compared on the frames both have (same dataset, protocol, sequence and frame),
  and on those where both values are defined. ``difference = mean(a) - mean(b)`` over those frames.
- One table of comparisons is one (dataset, protocol, column): Holm's correction runs over its
  pairs, separately for the bootstrap and for the Wilcoxon p-values. ``significant`` is the Holm-
  adjusted bootstrap p-value at most ``alpha``; ``better`` then names the better method, by the
  direction the metric registry gives the column (``MetricSpec.higher_is_better``).
- Every estimate draws from its own seed, derived from ``seed`` and the names of what it
  estimates, so adding a method or a metric to a run leaves the other numbers unchanged, and a-b
  gives exactly the mirror of b-a.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmark import statistics
from metrics import registry
from metrics.errors import CabenchError, InputError

KEYS = ("dataset", "protocol", "method")
INTERVAL_COLUMNS = ("mean", "ci_low", "ci_high", "n_frames", "n_sequences", "block_length")
COMPARE_COLUMNS = ("dataset", "protocol", "metric", "method_a", "method_b", "mean_a", "mean_b", "difference",
                   "ci_low", "ci_high", "p_bootstrap", "p_holm", "p_wilcoxon", "p_wilcoxon_holm", "significant",
                   "better", "n_frames", "n_sequences", "block_length")


def scored_columns(per_frame: pd.DataFrame) -> list[str]:
    """The metric columns of ``per_frame`` that score a method (a registered metric's, not reference
    columns such as the ground truth's own flow, nor the runtime, one value per rendered sequence), in
    table order."""
    found = []
    for column in per_frame.columns:
        spec = registry.column_spec(column)
        if spec is not None and spec.kind != "runtime" and spec.scores(column):
            found.append(column)
    return found


def select_columns(per_frame: pd.DataFrame, metric: str | None) -> list[str]:
    """The columns that ``metric`` (a metric name or one of its columns; None: all) names in the run."""
    available = scored_columns(per_frame)
    if metric is None:
        if not available:
            raise InputError("the run has no metric columns to compare")
        return available
    if metric in available:
        return [metric]
    try:
        spec = registry.get(metric)
    except CabenchError:
        spec = None
    chosen = [c for c in available if spec is not None and spec.scores(c)]
    if not chosen:
        known = ", ".join(available) or "none"
        raise InputError(f"--metric {metric}: not a metric column of this run (it has: {known})")
    return chosen


def _seed(seed: int, *names: object) -> np.random.SeedSequence:
    """A seed for one estimate, from the run's seed and a stable hash of what it estimates."""
    return np.random.SeedSequence([int(seed), *(zlib.crc32(str(name).encode()) for name in names)])


def _with_keys(per_frame: pd.DataFrame) -> pd.DataFrame:
    table = per_frame
    for key, value in (("dataset", ""), ("protocol", ""), ("sequence", "")):
        if key not in table.columns:
            table = table.assign(**{key: value})
    return table


def _series(group: pd.DataFrame, column: str) -> list[np.ndarray]:
    """Per-sequence series of ``column`` in frame order (sequences in order of first appearance)."""
    ordered = group.sort_values(["sequence", "frame"], kind="stable")
    return [rows[column].to_numpy(dtype=np.float64) for _, rows in ordered.groupby("sequence", sort=False)]


def interval_table(per_frame: pd.DataFrame, columns: Sequence[str] | None = None, level: float = statistics.LEVEL,
                   resamples: int = statistics.RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, protocol, method, metric column): the mean over defined frames with its
    block-bootstrap interval (``ci_low``, ``ci_high``), ``n_frames`` (defined), ``n_sequences`` and the
    mean block length in frames."""
    table = _with_keys(per_frame)
    columns = list(columns) if columns is not None else scored_columns(table)
    records = []
    for key, group in table.groupby(list(KEYS), sort=False):
        for column in columns:
            found = statistics.mean_interval(_series(group, column), level, resamples, _seed(seed, *key, column))
            records.append({**dict(zip(KEYS, key)), "metric": column, "mean": found.mean, "ci_low": found.low,
                            "ci_high": found.high, "n_frames": found.n_frames, "n_sequences": found.n_sequences,
                            "block_length": found.block_length})
    return pd.DataFrame(records, columns=[*KEYS, "metric", *INTERVAL_COLUMNS])


def method_pairs(methods: Sequence[str], baseline: str | None = None) -> list[tuple[str, str]]:
    """Every pair of ``methods`` in order, or each method against ``baseline`` (method - baseline)."""
    if baseline is None:
        return list(itertools.combinations(methods, 2))
    if baseline not in methods:
        raise InputError(f"--baseline {baseline}: no such method in the run (it has: {', '.join(methods)})")
    return [(method, baseline) for method in methods if method != baseline]


def compare_table(per_frame: pd.DataFrame, columns: Sequence[str] | None = None, baseline: str | None = None,
                  alpha: float = 0.05, resamples: int = statistics.RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Paired comparisons of the methods of ``per_frame`` (see the module docstring), one row per
    (dataset, protocol, metric column, pair); intervals at level ``1 - alpha``."""
    if not 0 < alpha < 1:
        raise InputError(f"--alpha {alpha}: must be between 0 and 1")
    table = _with_keys(per_frame)
    columns = list(columns) if columns is not None else scored_columns(table)
    methods = list(dict.fromkeys(table["method"]))
    pairs = method_pairs(methods, baseline)
    records = []
    for (dataset, protocol), group in table.groupby(["dataset", "protocol"], sort=False):
        by_method = {name: rows for name, rows in group.groupby("method", sort=False)}
        for column in columns:
            family = []
            for name_a, name_b in pairs:
                if name_a not in by_method or name_b not in by_method:
                    continue
                family.append(_compare_pair(by_method[name_a], by_method[name_b], column, alpha, resamples,
                                            _pair_seed(seed, dataset, protocol, column, name_a, name_b)))
                family[-1].update({"dataset": dataset, "protocol": protocol, "metric": column, "method_a": name_a,
                                   "method_b": name_b})
            _decide(family, column, alpha)
            records.extend(family)
    return pd.DataFrame(records, columns=list(COMPARE_COLUMNS))


def _pair_seed(seed: int, dataset: str, protocol: str, column: str, name_a: str, name_b: str) -> np.random.SeedSequence:
    # the pair's names sorted: the resampled blocks depend only on the pair, so b - a mirrors a - b
    return _seed(seed, dataset, protocol, column, *sorted((name_a, name_b)))


def _compare_pair(rows_a: pd.DataFrame, rows_b: pd.DataFrame, column: str, alpha: float, resamples: int,
                  seed: np.random.SeedSequence) -> dict:
    pairs = rows_a[["sequence", "frame", column]].merge(rows_b[["sequence", "frame", column]], on=["sequence", "frame"],
                                                        suffixes=("_a", "_b"))
    pairs = pairs.sort_values(["sequence", "frame"], kind="stable")
    values_a, values_b = pairs[f"{column}_a"].to_numpy(np.float64), pairs[f"{column}_b"].to_numpy(np.float64)
    both = ~(np.isnan(values_a) | np.isnan(values_b))
    groups = [np.flatnonzero(pairs["sequence"].to_numpy() == name) for name in pd.unique(pairs["sequence"])]
    found = statistics.paired_difference([values_a[g] for g in groups], [values_b[g] for g in groups], 1 - alpha,
                                         resamples, seed)
    with np.errstate(invalid="ignore"):
        mean_a = float(values_a[both].mean()) if both.any() else np.nan
        mean_b = float(values_b[both].mean()) if both.any() else np.nan
    return {"mean_a": mean_a, "mean_b": mean_b, "difference": found.mean, "ci_low": found.low, "ci_high": found.high,
            "p_bootstrap": found.p_bootstrap, "p_wilcoxon": found.p_wilcoxon, "n_frames": found.n_frames,
            "n_sequences": found.n_sequences, "block_length": found.block_length}


def _decide(family: list[dict], column: str, alpha: float) -> None:
    """Holm-adjust one table's p-values and mark the significant differences and the better method."""
    if not family:
        return
    spec = registry.column_spec(column)
    higher_is_better = True if spec is None else spec.higher_is_better
    adjusted = statistics.holm([row["p_bootstrap"] for row in family])
    adjusted_wilcoxon = statistics.holm([row["p_wilcoxon"] for row in family])
    for row, p_holm, p_wilcoxon_holm in zip(family, adjusted, adjusted_wilcoxon):
        significant = bool(p_holm <= alpha)
        a_higher = row["difference"] > 0
        better = (row["method_a"] if a_higher == higher_is_better else row["method_b"]) if significant else ""
        row.update({"p_holm": p_holm, "p_wilcoxon_holm": p_wilcoxon_holm, "significant": significant, "better": better})
