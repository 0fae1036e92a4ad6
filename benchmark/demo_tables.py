"""The demo's two extra tables, from its per-frame results: held-out against training frames, and the
reference model's rows compared frame by frame with the full model.

- :func:`split_table`: each row's mean on the held-out test frames beside its mean on the training
  frames, so a gap between the two (a model that learnt its training frames and not the subject)
  is seen at once.
- :func:`paired_table`: every other row minus the full model on the same frames
  (:func:`benchmark.results.statistics.paired_difference`: block bootstrap of the per-frame
  differences, 95% interval), ordered from the best to the worst, so the order of the ablations
  comes with the intervals that say whether it is settled.

Both are markdown, written beside the run's other tables and printed by ``cabench demo``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

CAPTION = ("The reference rows are the shipped *tiny* checkpoint: a toy-width ConsistentAvatar trained from random "
           "weights on the CPU for minutes, on the training frames of these synthetic sequences only "
           "(docs/reference.md). They show that the pipeline and the benchmark run end to end; their numbers are "
           "not the paper's model's.")


def _means(per_frame: pd.DataFrame, metric: str, protocol: str) -> pd.Series:
    rows = per_frame[per_frame["protocol"] == protocol] if "protocol" in per_frame else per_frame
    return rows.groupby("method", sort=False)[metric].mean()


def split_table(test: pd.DataFrame, train: pd.DataFrame, metrics: Sequence[str] = ("psnr", "ssim"),
                protocol: str = "canonical") -> str:
    """Markdown: one line per method present in both tables, each metric's test and train means."""
    methods = [m for m in dict.fromkeys(test["method"]) if m in set(train["method"])]
    header = "| row | " + " | ".join(f"{m} test | {m} train" for m in metrics) + " |"
    lines = [header, "|---|" + "---|" * (2 * len(metrics))]
    means = {(split, m): _means(frame, m, protocol) for split, frame in (("test", test), ("train", train))
             for m in metrics}
    for method in methods:
        cells = [f"{means[(s, m)].get(method, np.nan):.3f}" for m in metrics for s in ("test", "train")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _series(per_frame: pd.DataFrame, method: str, metric: str, sequences: list[str]) -> list[np.ndarray]:
    rows = per_frame[per_frame["method"] == method]
    return [rows[rows["sequence"] == s].sort_values("frame")[metric].to_numpy(np.float64) for s in sequences]


def paired_table(per_frame: pd.DataFrame, reference: str, methods: Sequence[str],
                 metrics: Sequence[str] = ("psnr", "ssim"), protocol: str = "canonical", seed: int = 0) -> str:
    """Markdown: ``method - reference`` per metric (mean difference and 95% block-bootstrap interval on
    the same frames), ordered by the first metric's difference, highest first."""
    from benchmark.results.statistics import paired_difference

    frame = per_frame[per_frame["protocol"] == protocol] if "protocol" in per_frame else per_frame
    sequences = sorted(set(frame[frame["method"] == reference]["sequence"]))
    base = {m: _series(frame, reference, m, sequences) for m in metrics}
    results = []
    for method in methods:
        if method == reference or method not in set(frame["method"]):
            continue
        diffs = [paired_difference(_series(frame, method, m, sequences), base[m], seed=seed) for m in metrics]
        results.append((method, diffs))
    results.sort(key=lambda item: -item[1][0].mean)
    lines = ["| row | " + " | ".join(f"{m} - {reference} [95% interval]" for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for method, diffs in results:
        lines.append(f"| {method} | " + " | ".join(f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]" for d in diffs) + " |")
    return "\n".join(lines) + "\n"
