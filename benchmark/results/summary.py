"""Summaries of a result table: per (dataset, method, protocol) and metric column, over frames.

``mean`` and ``std`` are over the frames where the column has a value (NaN skipped); ``count`` is
how many frames had one, ``frames`` how many rows there were, and ``coverage = count / frames`` the
share of frames the value is defined on. A face metric's coverage is the share of frames where a
face was found: a mean over fewer frames is not comparable with a mean over all of them, so the
tables show the coverage beside every face metric below 100%, and ``no face`` where it is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmark.results.schema import KEY_COLUMNS, MISSING_COLUMNS, SUMMARY_COLUMNS


def summarize(per_frame: pd.DataFrame, by: Sequence[str] = ("dataset", "method")) -> pd.DataFrame:
    """Mean, std, count, frames and coverage per group of ``by`` (and protocol) and metric column, long form."""
    keys = [k for k in by if k in per_frame.columns and k != "protocol"]
    groups_by = [*keys, "protocol"] if "protocol" in per_frame.columns else keys
    columns = [c for c in per_frame.columns if c not in KEY_COLUMNS and pd.api.types.is_numeric_dtype(per_frame[c])]
    records = []
    groups = per_frame.groupby(groups_by, sort=False) if groups_by else [((), per_frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        labels = dict(zip(groups_by, key))
        for column in columns:
            values = group[column].to_numpy(dtype=np.float64)
            finite = values[~np.isnan(values)]
            with np.errstate(invalid="ignore"):  # values with inf (PSNR of identical frames) have NaN std
                mean = float(np.mean(finite)) if len(finite) else np.nan
                std = float(np.std(finite)) if len(finite) else np.nan
            records.append({**{k: labels[k] for k in keys}, "metric": column, "protocol": labels.get("protocol", ""),
                            "mean": mean, "std": std, "count": int(len(finite)), "frames": int(len(values)),
                            "coverage": len(finite) / len(values) if len(values) else np.nan})
    order = [c for c in SUMMARY_COLUMNS if c not in ("dataset", "method") or c in keys]
    order = [*keys, *[c for c in order if c not in keys]]
    return pd.DataFrame(records, columns=order)


def missing_by_method(missing: pd.DataFrame) -> pd.DataFrame:
    """One missing record per (dataset, method, protocol, metric): the reasons of its sequences joined."""
    keys = [c for c in MISSING_COLUMNS if c not in ("sequence", "reason") and c in missing.columns]
    if missing.empty:
        return pd.DataFrame(columns=[*keys, "reason"])
    grouped = missing.groupby(keys, sort=False)["reason"]
    return grouped.agg(lambda reasons: "; ".join(dict.fromkeys(reasons))).reset_index()
