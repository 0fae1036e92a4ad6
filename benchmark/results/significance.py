"""Paired comparisons of the methods of a result table, and which methods are not significantly
worse than the best.

The kernels are in :mod:`benchmark.results.statistics`; this module cuts a per-frame result table
(one row per dataset, sequence, method, frame and protocol, one column per metric column) into the
per-frame series they take. Conventions:

- Two methods are compared on the frames both have (same dataset, protocol, sequence and frame),
  and on those where both values are defined. ``difference = mean(a) - mean(b)`` over those frames.
- One table of comparisons is one (dataset, protocol, column): Holm's correction runs over its
  pairs, separately for the bootstrap and for the Wilcoxon p-values. ``significant`` is the Holm-
  adjusted bootstrap p-value at most ``alpha``; ``better`` then names the better method, by the
  column's direction, which the caller gives (``higher_is_better``: {column: bool}, from the metric
  registry; this layer does not read the registry).
- Every comparison draws from its own seed, derived from ``seed`` and the names of the dataset,
  column and the pair (sorted), so adding a method or a metric to a run leaves the other numbers
  unchanged, and a - b gives exactly the mirror of b - a. The protocol is not part of it: values
  that are alike under two protocols compare alike under both.
- :func:`versus_best`: in each (dataset, protocol, column), the best method by mean over its
  defined frames (the summary's mean) among the competing methods, and each other competing method
  compared with it as :func:`compare_table` does with that method as baseline; ``not_worse`` is
  the absence of a significant difference in the best's favour. That is what the tables' mark says.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.results import statistics
from metrics.errors import InputError

COMPARE_COLUMNS = ("dataset", "protocol", "metric", "method_a", "method_b", "mean_a", "mean_b", "difference",
                   "ci_low", "ci_high", "p_bootstrap", "p_holm", "p_wilcoxon", "p_wilcoxon_holm", "significant",
                   "better", "n_frames", "n_sequences", "block_length")
VERSUS_BEST_COLUMNS = ("dataset", "protocol", "metric", "method", "best", "mean", "difference", "ci_low", "ci_high",
                       "p_holm", "not_worse")


def _with_keys(per_frame: pd.DataFrame) -> pd.DataFrame:
    table = per_frame
    for key, value in (("dataset", ""), ("protocol", ""), ("sequence", "")):
        if key not in table.columns:
            table = table.assign(**{key: value})
    return table


def method_pairs(methods: Sequence[str], baseline: str | None = None) -> list[tuple[str, str]]:
    """Every pair of ``methods`` in order, or each method against ``baseline`` (method - baseline)."""
    if baseline is None:
        return list(itertools.combinations(methods, 2))
    if baseline not in methods:
        raise InputError(f"--baseline {baseline}: no such method in the run (it has: {', '.join(methods)})")
    return [(method, baseline) for method in methods if method != baseline]


def compare_table(per_frame: pd.DataFrame, higher_is_better: Mapping[str, bool], baseline: str | None = None,
                  alpha: float = 0.05, resamples: int = statistics.RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Paired comparisons of the methods of ``per_frame`` (see the module docstring), one row per
    (dataset, protocol, metric column, pair), for the columns of ``higher_is_better`` (column ->
    its direction); intervals at level ``1 - alpha``."""
    if not 0 < alpha < 1:
        raise InputError(f"--alpha {alpha}: must be between 0 and 1")
    table = _with_keys(per_frame)
    methods = list(pd.unique(table["method"]))
    pairs = method_pairs(methods, baseline)
    records = []
    for (dataset, protocol), group in table.groupby(["dataset", "protocol"], sort=False):
        by_method = {name: rows for name, rows in group.groupby("method", sort=False)}
        present = [(a, b) for a, b in pairs if a in by_method and b in by_method]
        aligned = {(a, b): _Aligned.of(by_method[a], by_method[b], list(higher_is_better)) for a, b in present}
        for column, higher in higher_is_better.items():
            family = []
            for name_a, name_b in present:
                family.append(_compare_pair(aligned[(name_a, name_b)], column, alpha, resamples,
                                            _pair_seed(seed, dataset, column, name_a, name_b)))
                family[-1].update({"dataset": dataset, "protocol": protocol, "metric": column, "method_a": name_a,
                                   "method_b": name_b})
            _decide(family, higher, alpha)
            records.extend(family)
    return pd.DataFrame(records, columns=list(COMPARE_COLUMNS))


def _pair_seed(seed: int, dataset: str, column: str, name_a: str, name_b: str) -> np.random.SeedSequence:
    # the pair's names sorted: the resampled blocks depend only on the pair, so b - a mirrors a - b
    return statistics.estimate_seed(seed, dataset, column, *sorted((name_a, name_b)))


@dataclass(frozen=True)
class _Aligned:
    """Two methods' rows on the frames both have (same sequence and frame), sequence by sequence in
    frame order: ``pairs`` holds each column twice (``<column>_a``, ``<column>_b``)."""

    pairs: pd.DataFrame
    sequences: list[np.ndarray]  # row positions of each sequence in ``pairs``

    @classmethod
    def of(cls, rows_a: pd.DataFrame, rows_b: pd.DataFrame, columns: Sequence[str]) -> _Aligned:
        keep = ["sequence", "frame", *(c for c in columns if c in rows_a and c in rows_b)]
        pairs = rows_a[keep].merge(rows_b[keep], on=["sequence", "frame"], suffixes=("_a", "_b"))
        pairs = pairs.sort_values(["sequence", "frame"], kind="stable", ignore_index=True)
        names = pairs["sequence"].to_numpy()
        return cls(pairs, [np.flatnonzero(names == name) for name in pd.unique(names)])


def _compare_pair(aligned: _Aligned, column: str, alpha: float, resamples: int, seed: np.random.SeedSequence) -> dict:
    pairs, groups = aligned.pairs, aligned.sequences
    values_a, values_b = pairs[f"{column}_a"].to_numpy(np.float64), pairs[f"{column}_b"].to_numpy(np.float64)
    both = ~(np.isnan(values_a) | np.isnan(values_b))
    found = statistics.paired_difference([values_a[g] for g in groups], [values_b[g] for g in groups], 1 - alpha,
                                         resamples, seed)
    with np.errstate(invalid="ignore"):
        mean_a = float(values_a[both].mean()) if both.any() else np.nan
        mean_b = float(values_b[both].mean()) if both.any() else np.nan
    return {"mean_a": mean_a, "mean_b": mean_b, "difference": found.mean, "ci_low": found.low, "ci_high": found.high,
            "p_bootstrap": found.p_bootstrap, "p_wilcoxon": found.p_wilcoxon, "n_frames": found.n_frames,
            "n_sequences": found.n_sequences, "block_length": found.block_length}


def _decide(family: list[dict], higher_is_better: bool, alpha: float) -> None:
    """Holm-adjust one table's p-values and mark the significant differences and the better method."""
    if not family:
        return
    adjusted = statistics.holm([row["p_bootstrap"] for row in family])
    adjusted_wilcoxon = statistics.holm([row["p_wilcoxon"] for row in family])
    for row, p_holm, p_wilcoxon_holm in zip(family, adjusted, adjusted_wilcoxon):
        significant = bool(p_holm <= alpha)
        a_higher = row["difference"] > 0
        better = (row["method_a"] if a_higher == higher_is_better else row["method_b"]) if significant else ""
        row.update({"p_holm": p_holm, "p_wilcoxon_holm": p_wilcoxon_holm, "significant": significant, "better": better})


def best_method(means: Mapping[str, float], higher_is_better: bool) -> str | None:
    """The method with the best mean (the first of equals, in the mapping's order); None if none is defined."""
    defined = {name: value for name, value in means.items() if not np.isnan(value)}
    if not defined:
        return None
    pick = max if higher_is_better else min
    return pick(defined, key=defined.__getitem__)


def versus_best(per_frame: pd.DataFrame, higher_is_better: Mapping[str, bool], competing: Sequence[str] | None = None,
                alpha: float = 0.05, resamples: int = statistics.RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per (dataset, protocol, column of ``higher_is_better``): the best of the ``competing`` methods
    (default: every method) and whether each of them is not significantly worse than it (see the
    module docstring), one row per competing method with a defined mean, the best included
    (``difference`` 0, ``not_worse`` True). ``difference``, ``ci_low``, ``ci_high`` and ``p_holm``
    are those of ``method - best`` in :func:`compare_table` with the best as baseline."""
    table = _with_keys(per_frame)
    if competing is not None:
        table = table[table["method"].isin(list(competing))]
    records = []
    for (dataset, protocol), group in table.groupby(["dataset", "protocol"], sort=False):
        columns = [c for c in higher_is_better if c in group]
        if not columns:
            continue
        means = group.groupby("method", sort=False)[columns].agg(_defined_mean)
        best = {c: best_method(means[c].to_dict(), higher_is_better[c]) for c in columns}
        by_column: dict[str, list[dict]] = {}
        for name in dict.fromkeys(b for b in best.values() if b is not None):  # one comparison table per best method
            chosen = {c: higher_is_better[c] for c in columns if best[c] == name}
            found = compare_table(group, chosen, baseline=name, alpha=alpha, resamples=resamples, seed=seed)
            found = found.set_index(["metric", "method_a"])
            for column in chosen:
                by_column[column] = [_versus(dataset, protocol, column, method, float(mean), name, found)
                                     for method, mean in means[column].dropna().items()]
        records += [record for column in columns for record in by_column.get(column, [])]
    return pd.DataFrame(records, columns=list(VERSUS_BEST_COLUMNS))


def _versus(dataset: str, protocol: str, column: str, method: str, mean: float, best: str, found: pd.DataFrame) -> dict:
    """One row of :func:`versus_best` from the comparisons with the best (``found``, by metric and method_a)."""
    record = {"dataset": dataset, "protocol": protocol, "metric": column, "method": method, "best": best, "mean": mean}
    if method == best:
        return {**record, "difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_holm": 1.0, "not_worse": True}
    row = found.loc[(column, method)]
    return {**record, "difference": row["difference"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "p_holm": row["p_holm"], "not_worse": not (row["significant"] and row["better"] == best)}


def _defined_mean(values: pd.Series) -> float:
    """The mean over the defined values (NaN skipped; an infinite value makes it infinite), as in the summary."""
    array = values.to_numpy(dtype=np.float64)
    array = array[~np.isnan(array)]
    with np.errstate(invalid="ignore"):
        return float(array.mean()) if len(array) else np.nan
