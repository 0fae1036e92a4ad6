"""The step sweep's statistics (``cabench time --quality``): per (scheduler, lora, steps), the mean of each
metric over the frames with its block-bootstrap interval over the sequences and their frames
(:func:`benchmark.results.statistics.mean_interval`, the summaries' estimator), and for LCM with its LCM-LoRA
the paired difference to LCM without it at the same steps (:func:`benchmark.results.statistics.paired_difference`,
frame by frame); each estimate is seeded from its names (:func:`~benchmark.results.statistics.estimate_seed`),
so rows do not share draws. Rows are named by :func:`sweep_label`, as the plots name them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.results.statistics import estimate_seed, mean_interval, paired_difference

SEED = 0
METRICS = ("psnr", "ssim")


def sweep_label(scheduler: str, lora: str = "on") -> str:
    """The name of a sampler's rows: the sampler, or "lcm (LoRA off)" for LCM with its LCM-LoRA switched
    off (other samplers never use the LoRA, so their name carries no setting)."""
    return f"{scheduler} (LoRA off)" if scheduler == "lcm" and lora == "off" else str(scheduler)


def _series(rows: pd.DataFrame, column: str, sequences: list[str]) -> list[np.ndarray]:
    """Per sequence, ``column`` in frame order (the order the block bootstrap needs)."""
    return [rows[rows["sequence"] == s].sort_values("frame")[column].to_numpy(float) for s in sequences]


def sweep_table(times: pd.DataFrame, quality: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One row per (scheduler, lora, steps) of ``quality``: ``total_ms`` (median over the repeats of
    ``times``, the rows of ``cabench time``, NaN where not timed), ``frames``, and per metric its mean with ``_low`` / ``_high`` (the ``level``
    interval); for LCM with the LoRA, when LCM without it was rendered at the same steps, ``reference``
    names that row and ``<metric>_diff`` (with ``_low``, ``_high``, ``_p``) is the paired difference
    with the LoRA minus without it."""

    keys = ["scheduler", "lora", "steps"]
    medians = times.groupby(keys)["total_ms"].median().to_dict()
    sequences = list(dict.fromkeys(quality["sequence"]))
    groups = {key: rows for key, rows in quality.groupby(keys, sort=False)}
    table = []
    for (scheduler, lora, steps), rows in groups.items():
        label = sweep_label(scheduler, lora)
        row = {"label": label, "scheduler": scheduler, "lora": lora, "steps": int(steps),
               "total_ms": medians.get((scheduler, lora, steps), np.nan), "frames": len(rows)}
        for metric in METRICS:
            estimate = mean_interval(_series(rows, metric, sequences), level=level,
                                     seed=estimate_seed(SEED, "sweep", label, steps, metric))
            row.update({metric: estimate.mean, f"{metric}_low": estimate.low, f"{metric}_high": estimate.high})
        reference = groups.get((scheduler, "off", steps)) if scheduler == "lcm" and lora == "on" else None
        row["reference"] = sweep_label(scheduler, "off") if reference is not None else ""
        for metric in METRICS:
            names = [f"{metric}_diff", f"{metric}_diff_low", f"{metric}_diff_high", f"{metric}_diff_p"]
            if reference is None:
                row.update(dict.fromkeys(names, np.nan))
                continue
            paired = paired_difference(_series(rows, metric, sequences), _series(reference, metric, sequences),
                                       level=level, seed=estimate_seed(SEED, "sweep", label, steps, metric, "paired"))
            row.update(dict(zip(names, (paired.mean, paired.low, paired.high, paired.p_bootstrap))))
        table.append(row)
    return pd.DataFrame(table)
