"""Timing: the summary of a paper-sized run (every value with its block-bootstrap interval), the
tables' marks (every method against the best, paired), and the block-sum trick.

Run: ``pytest tests/bench/bench_statistics.py --benchmark-only``. The run is 10 methods x 3 datasets x
10 sequences x 350 frames x 10 metric columns (10.5 million values): its summary holds 300 intervals
of 2000 resamples, its marks 270 paired comparisons with the best (9 per dataset and column).
Its per-frame series are AR(1) with the autocorrelations of real per-frame metrics (0.3 to 0.9: the
weaker the correlation, the shorter the blocks and the more of them a resample draws) and 5%
undefined frames in the face metrics.

The second pair of timings is one sequence resampled both ways with the same draws: as block sums
(what :mod:`benchmark.results.statistics` does, cost ~ resamples x blocks) and by gathering every frame of
every block (cost ~ resamples x frames); ``test_block_sums_equal_frame_gathering`` checks they give
the same means, so their ratio is the speed-up at equal values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from benchmark.results import statistics
from benchmark.results.significance import versus_best
from benchmark.results.summary import summarize

METHODS, DATASETS, SEQUENCES, FRAMES = 10, 3, 10, 350
AUTOCORRELATION = {"l2": 0.9, "psnr": 0.9, "ssim": 0.8, "lpips": 0.7, "deca_pe": 0.5, "deca_ee": 0.3,
                   "tof": 0.6, "tlp": 0.4, "lmd": 0.7, "csim": 0.8}
FACE = ("deca_pe", "deca_ee", "lmd", "csim")


@pytest.fixture(scope="module")
def run_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    keys = pd.MultiIndex.from_product(
        [[f"dataset{i}" for i in range(DATASETS)], [f"seq{i}" for i in range(SEQUENCES)],
         [f"method{i}" for i in range(METHODS)], range(FRAMES)],
        names=["dataset", "sequence", "method", "frame"]).to_frame(index=False)
    keys["protocol"] = "canonical"
    series = DATASETS * SEQUENCES * METHODS
    columns = {}
    for name, phi in AUTOCORRELATION.items():
        values = lfilter([1.0], [1.0, -phi], rng.normal(size=(series, FRAMES)) * np.sqrt(1 - phi**2), axis=1)
        if name in FACE:
            values[rng.random(values.shape) < 0.05] = np.nan
        columns[name] = values.ravel()
    return pd.concat([keys, pd.DataFrame(columns)], axis=1)


def test_bench_run_summary(benchmark, run_table):
    benchmark.group = "summary of a 10x3x10x350x10 run"
    summary = benchmark.pedantic(summarize, args=(run_table,), rounds=3, iterations=1)
    assert len(summary) == METHODS * DATASETS * len(AUTOCORRELATION)
    assert (summary["ci_low"] < summary["mean"]).all() and (summary["mean"] < summary["ci_high"]).all()


def test_bench_run_marks(benchmark, run_table):
    benchmark.group = "marks of a 10x3x10x350x10 run"
    directions = dict.fromkeys(AUTOCORRELATION, True)
    marks = benchmark.pedantic(versus_best, args=(run_table, directions), rounds=3, iterations=1)
    assert len(marks) == METHODS * DATASETS * len(AUTOCORRELATION)
    assert marks.groupby(["dataset", "metric"])["best"].nunique().eq(1).all()


def frame_gathering_means(values: np.ndarray, block: int, starts: np.ndarray) -> np.ndarray:
    """Circular block bootstrap means by indexing every frame of every block (the plain way)."""
    offsets = np.arange(block)
    frames = ((starts[:, :, None].astype(np.int64) + offsets) % len(values)).reshape(len(starts), -1)[:, : len(values)]
    return values[frames].mean(axis=1)


@pytest.fixture(scope="module")
def one_sequence():
    values = 30 + lfilter([1.0], [1.0, -0.6], np.random.default_rng(1).normal(size=FRAMES))
    block = int(np.ceil(statistics.BLOCK_FACTOR * statistics.block_lengths(values)[0]))
    return values, block


def _draws(values: np.ndarray, block: int) -> np.ndarray:
    # the draws statistics._within_resamples makes from the same generator state
    rng = np.random.default_rng(5)
    return rng.integers(0, len(values), size=(statistics.RESAMPLES, -(-len(values) // block)), dtype=np.uint16)


def test_block_sums_equal_frame_gathering(one_sequence):
    values, block = one_sequence
    sums, counts = statistics._within_resamples(values, block, statistics.RESAMPLES, np.random.default_rng(5))
    np.testing.assert_allclose(sums / counts, frame_gathering_means(values, block, _draws(values, block)), rtol=1e-12)


def test_bench_block_sums(benchmark, one_sequence):
    values, block = one_sequence
    benchmark.group = "2000 circular-block resamples of 350 frames"
    benchmark(lambda: statistics._within_resamples(values, block, statistics.RESAMPLES, np.random.default_rng(5)))


def test_bench_frame_gathering(benchmark, one_sequence):
    values, block = one_sequence
    benchmark.group = "2000 circular-block resamples of 350 frames"
    benchmark(lambda: frame_gathering_means(values, block, _draws(values, block)))
