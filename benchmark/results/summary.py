"""Summaries of a result table: per (dataset, method, protocol) and metric column, over frames.

``mean`` and ``std`` are over the frames where the column has a value (NaN skipped); ``count`` is
how many frames had one, ``frames`` how many rows there were, and ``coverage = count / frames`` the
share of frames the value is defined on. A face metric's coverage is the share of frames where a
face was found: a mean over fewer frames is not comparable with a mean over all of them, so the
tables show the coverage beside every face metric below 100%, and ``no face`` where it is 0.

``ci_low`` and ``ci_high`` bound the block-bootstrap interval of the mean
(:func:`benchmark.results.statistics.mean_interval`: sequences resampled, and contiguous blocks of
frames within each, because adjacent frames are correlated), at the level, with the resamples and
seed of :class:`~benchmark.results.bootstrap.BootstrapSettings`; ``n_frames`` is the number of
frames the mean and its interval rest on (those with a value, = ``count``) and ``n_sequences`` the
number of sequences among them. Each sequence's series is in frame order and the sequences in
sorted order of their names; each (group, column) draws from its own seed
(:func:`~benchmark.results.statistics.estimate_seed` of the run's seed, the group's names in the
order of ``by``, and the column), so the same run and seed give the same numbers and adding a
method or a metric leaves the others unchanged. The protocol is not part of the seed: frames that
score alike under two protocols get the same interval under both. The runtime column (``time_s``) has no interval:
it is one wall-time measurement per rendered sequence, not a per-frame sample of the method's quality.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmark.results import statistics
from benchmark.results.bootstrap import BootstrapSettings
from benchmark.results.schema import KEY_COLUMNS, MISSING_COLUMNS, SUMMARY_COLUMNS, TIME_COLUMN


def summarize(per_frame: pd.DataFrame, by: Sequence[str] = ("dataset", "method"),
              bootstrap: BootstrapSettings | None = None) -> pd.DataFrame:
    """Mean, std, count, frames, coverage and the mean's interval (``ci_low``, ``ci_high``,
    ``n_frames``, ``n_sequences``) per group of ``by`` (and protocol) and metric column, long form
    (see the module docstring); ``bootstrap`` defaults to :class:`BootstrapSettings`\\ ()."""
    bootstrap = bootstrap or BootstrapSettings()
    keys = [k for k in by if k in per_frame.columns and k != "protocol"]
    groups_by = [*keys, "protocol"] if "protocol" in per_frame.columns else keys
    columns = [c for c in per_frame.columns if c not in KEY_COLUMNS and pd.api.types.is_numeric_dtype(per_frame[c])]
    order, group_starts, sequence_starts = _layout(per_frame, groups_by)
    labels_of = per_frame[groups_by].to_numpy(dtype=object)[order] if groups_by else None
    records = []
    for first, end in zip(group_starts[:-1], group_starts[1:]):
        labels = dict(zip(groups_by, labels_of[first])) if groups_by else {}
        cuts = [int(c) - first for c in sequence_starts if first < c < end]
        for column in columns:
            values = per_frame[column].to_numpy(dtype=np.float64)[order[first:end]]
            records.append({**{k: labels[k] for k in keys}, "metric": column, "protocol": labels.get("protocol", ""),
                            **_describe(values, np.split(values, cuts), column, [labels[k] for k in keys], bootstrap)})
    order_columns = [c for c in SUMMARY_COLUMNS if c not in ("dataset", "method") or c in keys]
    order_columns = [*keys, *[c for c in order_columns if c not in keys]]
    return pd.DataFrame(records, columns=order_columns)


def _layout(per_frame: pd.DataFrame, groups_by: Sequence[str]) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Row order (groups in order of first appearance, then sequences by name, then frames), the start
    of each group in that order (and the end), and the start of each (group, sequence) run of rows."""
    rows = len(per_frame)
    group = np.zeros(rows, dtype=np.int64)
    if groups_by:
        group = pd.MultiIndex.from_frame(per_frame[list(groups_by)].astype(str)).factorize()[0]
    sequence = (pd.factorize(per_frame["sequence"].astype(str), sort=True)[0] if "sequence" in per_frame
                else np.zeros(rows, dtype=np.int64))
    frame = per_frame["frame"].to_numpy() if "frame" in per_frame else np.arange(rows)
    order = np.lexsort((frame, sequence, group))
    group_sorted, sequence_sorted = group[order], sequence[order]
    changes = np.flatnonzero(np.diff(group_sorted)) + 1
    group_starts = [0, *changes.tolist(), rows] if rows else [0]
    sequence_starts = np.flatnonzero((np.diff(group_sorted) != 0) | (np.diff(sequence_sorted) != 0)) + 1
    return order, group_starts, sequence_starts


def _describe(values: np.ndarray, sequences: list[np.ndarray], column: str, names: list, bootstrap: BootstrapSettings) -> dict:
    """The summary numbers of one (group, column): ``values`` in the layout's order, cut into ``sequences``."""
    finite = values[~np.isnan(values)]
    with np.errstate(invalid="ignore"):  # values with inf (PSNR of identical frames) have NaN std
        mean = float(np.mean(finite)) if len(finite) else np.nan
        std = float(np.std(finite)) if len(finite) else np.nan
    found = {"mean": mean, "std": std, "count": int(len(finite)), "frames": int(len(values)),
             "coverage": len(finite) / len(values) if len(values) else np.nan}
    if column == TIME_COLUMN:
        defined = sum(1 for s in sequences if (~np.isnan(s)).any())
        return {**found, "ci_low": np.nan, "ci_high": np.nan, "n_frames": int(len(finite)), "n_sequences": defined}
    interval = statistics.mean_interval(sequences, bootstrap.level, bootstrap.resamples,
                                        statistics.estimate_seed(bootstrap.seed, *names, column))
    return {**found, "ci_low": interval.low, "ci_high": interval.high, "n_frames": interval.n_frames,
            "n_sequences": interval.n_sequences}


def missing_by_method(missing: pd.DataFrame) -> pd.DataFrame:
    """One missing record per (dataset, method, protocol, metric): the reasons of its sequences joined."""
    keys = [c for c in MISSING_COLUMNS if c not in ("sequence", "reason") and c in missing.columns]
    if missing.empty:
        return pd.DataFrame(columns=[*keys, "reason"])
    grouped = missing.groupby(keys, sort=False)["reason"]
    return grouped.agg(lambda reasons: "; ".join(dict.fromkeys(reasons))).reset_index()
