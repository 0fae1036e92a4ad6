"""Does a ranking of methods survive a change of protocol? Rankings per protocol and their agreement.

Published avatar numbers come from scripts that compute "PSNR" differently (the protocols of
:mod:`metrics.protocols`); a run evaluated under several protocols has the same outputs scored
each way. From its summary (:func:`benchmark.results.summary.summarize`):

- :func:`protocol_rankings`: per (dataset, column, protocol), each competing method's mean (with its
  interval) and rank, 1 the best by the column's direction; equal means share the better rank
  (``min`` ranking: 1, 2, 2, 4); a method without a value there has no rank.
- :func:`ranking_agreement`: per (dataset, column) and pair of protocols, Kendall's tau-b between
  the two rankings of the methods both rank (:func:`benchmark.results.statistics.kendall_tau`, which
  is ``scipy.stats.kendalltau``; 1: the same order, -1: reversed), its p-value, how many methods it
  rests on, and whether the two protocols name the same best method.

The columns and their directions are the caller's (``higher_is_better``, from the metric registry).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from benchmark.results import statistics

RANKING_COLUMNS = ("dataset", "metric", "protocol", "method", "mean", "ci_low", "ci_high", "rank")
AGREEMENT_COLUMNS = ("dataset", "metric", "protocol_a", "protocol_b", "tau", "p_value", "n_methods", "best_a",
                     "best_b", "same_best")


def protocol_rankings(summary: pd.DataFrame, higher_is_better: Mapping[str, bool],
                      competing: Sequence[str] | None = None) -> pd.DataFrame:
    """Each protocol's ranking of the ``competing`` methods (default: all) on each column of
    ``higher_is_better``, per dataset (see the module docstring)."""
    table = summary if "dataset" in summary else summary.assign(dataset="")
    table = table[table["metric"].isin(list(higher_is_better))]
    if competing is not None:
        table = table[table["method"].isin(list(competing))]
    records = []
    for (dataset, column, protocol), group in table.groupby(["dataset", "metric", "protocol"], sort=False):
        means = group["mean"].astype(np.float64)
        ranks = means.rank(method="min", ascending=not higher_is_better[column])
        for record, rank in zip(group.itertuples(index=False), ranks):
            records.append({"dataset": dataset, "metric": column, "protocol": protocol, "method": record.method,
                            "mean": float(record.mean), "ci_low": getattr(record, "ci_low", np.nan),
                            "ci_high": getattr(record, "ci_high", np.nan),
                            "rank": int(rank) if np.isfinite(rank) else pd.NA})
    frame = pd.DataFrame(records, columns=list(RANKING_COLUMNS))
    frame["rank"] = frame["rank"].astype("Int64")
    return frame


def ranking_agreement(rankings: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau between every two protocols' rankings, per (dataset, column), from
    :func:`protocol_rankings` (see the module docstring)."""
    records = []
    for (dataset, column), group in rankings.groupby(["dataset", "metric"], sort=False):
        scores = {protocol: dict(zip(rows["method"], rows["mean"].astype(np.float64)))
                  for protocol, rows in group.groupby("protocol", sort=False)}
        best = {protocol: set(rows.loc[rows["rank"] == 1, "method"]) for protocol, rows in group.groupby("protocol", sort=False)}
        for protocol_a, protocol_b in itertools.combinations(scores, 2):
            tau, p_value = statistics.kendall_tau(scores[protocol_a], scores[protocol_b])
            common = [m for m in scores[protocol_a] if m in scores[protocol_b]
                      and np.isfinite(scores[protocol_a][m]) and np.isfinite(scores[protocol_b][m])]
            best_a, best_b = sorted(best[protocol_a]), sorted(best[protocol_b])
            records.append({"dataset": dataset, "metric": column, "protocol_a": protocol_a, "protocol_b": protocol_b,
                            "tau": tau, "p_value": p_value, "n_methods": len(common), "best_a": ", ".join(best_a),
                            "best_b": ", ".join(best_b), "same_best": bool(best_a) and best_a == best_b})
    return pd.DataFrame(records, columns=list(AGREEMENT_COLUMNS))
