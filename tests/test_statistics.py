"""Block-bootstrap statistics against independent references: simulated series with a known mean,
arch's block-length rule, the closed-form variance of the circular block bootstrap, scipy's
Wilcoxon and Kendall tests, statsmodels' Holm correction.

Simulation sizes: 400 series give a coverage or rejection rate to about ±1.1 points (one standard
error at 95%), so the bands below (coverage 90-98%, type-I error at most 8% at alpha 0.05) are
about three standard errors wide on the side that matters. The intervals use the bootstrap standard
error, whose Monte Carlo error with 400 resamples is about 3.5%, which moves a 95% coverage by well
under one point; so the simulations use 400 resamples instead of the default 2000.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter
from scipy.stats import kendalltau, wilcoxon

from benchmark.results import statistics

SIMULATED = 400
RESAMPLES = 400


def ar1(phi: float, frames: int, count: int, rng: np.random.Generator, sd: float = 1.0) -> np.ndarray:
    """``count`` stationary AR(1) series (count, frames), mean 0, marginal standard deviation ``sd``."""
    shocks = rng.normal(size=(count, frames)) * np.sqrt(1 - phi**2)
    start = rng.normal(size=count)
    series = lfilter([1.0], [1.0, -phi], shocks, axis=1, zi=(phi * start)[:, None])[0]
    return sd * series


def test_block_length_follows_arch():
    """The Politis-White rule (2009 correction, circular bootstrap) of the ``arch`` package: the same length
    for every series (arch's lengths below one frame are one frame here), persistent or not, short or long."""
    from arch.bootstrap import optimal_block_length

    rng = np.random.default_rng(1)
    for phi in (0.0, 0.3, 0.5, 0.6, 0.8, 0.9, 0.95):
        for length in (60, 300, 1000):
            series = ar1(phi, length, 300, rng)
            mine = statistics.block_lengths(series)
            reference = np.maximum(optimal_block_length(series.T)["circular"].to_numpy(), 1.0)
            equal = np.isclose(mine, reference, rtol=1e-9)
            assert equal.all(), (phi, length, mine[~equal], reference[~equal])


def test_block_length_grows_with_persistence_and_ignores_padding():
    rng = np.random.default_rng(2)
    medians = [np.median(statistics.block_lengths(ar1(phi, 300, 40, rng))) for phi in (0.0, 0.5, 0.9)]
    assert medians[0] < 2.5 and medians[0] < medians[1] < medians[2]
    series = ar1(0.8, 250, 5, rng)
    padded = np.concatenate([series, np.full((5, 50), np.nan)], axis=1)
    np.testing.assert_allclose(statistics.block_lengths(padded), statistics.block_lengths(series))
    assert statistics.block_lengths(np.full((1, 100), 3.0))[0] == 1.0


def circular_block_variance(values: np.ndarray, block: int) -> float:
    """Closed form: the variance of the circular-block-bootstrap mean of ``values`` with blocks of
    ``block`` frames and ``len(values)`` a multiple of it, ``(1/n) Σ_{|k|<b} (1 - |k|/b) γ(k)``, with
    circular autocovariances about the mean (Politis & Romano 1992)."""
    centred = values - values.mean()
    n = len(values)
    gamma = [np.mean(centred * np.roll(centred, -k)) for k in range(block)]
    return float((gamma[0] + 2 * sum((1 - k / block) * gamma[k] for k in range(1, block))) / n)


def test_resampling_matches_the_closed_form_variance():
    rng = np.random.default_rng(3)
    values = 30 + ar1(0.8, 300, 1, rng)[0]
    means = statistics.bootstrap_means([values], resamples=20000, seed=0, blocks=[12])
    assert means.mean() == pytest.approx(values.mean(), abs=3 * means.std() / np.sqrt(len(means)))
    # the sample variance of 20000 draws is within 2% of the truth with high probability
    assert means.var() == pytest.approx(circular_block_variance(values, 12), rel=0.04)

    # two stages (equal lengths): sequences with replacement, then blocks within each drawn copy
    sequences = [10 + s + ar1(0.7, 240, 1, rng)[0] for s in range(4)]
    means = statistics.bootstrap_means(sequences, resamples=20000, seed=1, blocks=[8] * 4)
    sequence_means = np.array([s.mean() for s in sequences])
    between = sequence_means.var() / len(sequences)
    within = sum(circular_block_variance(s, 8) for s in sequences) / len(sequences) ** 2
    assert means.var() == pytest.approx(between + within, rel=0.04)


def test_block_bootstrap_covers_the_mean_and_iid_does_not():
    """AR(1) series of 300 frames with mean 30: the 95% interval covers 30 in 90-98% of 400 series
    at autocorrelations 0 to 0.8, while an i.i.d. bootstrap over frames (percentile interval) falls
    visibly below as soon as frames are correlated."""
    rng = np.random.default_rng(4)
    for phi in (0.0, 0.3, 0.6, 0.8):
        series = 30 + ar1(phi, 300, SIMULATED, rng)
        covered = [statistics.mean_interval([s], resamples=RESAMPLES, seed=i) for i, s in enumerate(series)]
        coverage = np.mean([found.low <= 30 <= found.high for found in covered])
        assert 0.90 <= coverage <= 0.98, (phi, coverage)
        if phi >= 0.6:
            iid_covered = []
            for values in series:
                iid = values[rng.integers(0, 300, size=(RESAMPLES, 300), dtype=np.uint16)].mean(axis=1)
                low, high = np.quantile(iid, [0.025, 0.975])
                iid_covered.append(low <= 30 <= high)
            iid_coverage = np.mean(iid_covered)
            assert iid_coverage < 0.80, (phi, iid_coverage)
            assert coverage - iid_coverage > 0.15


def two_methods(rng: np.random.Generator, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PSNR of two methods on the same 350 frames, SIMULATED times: a shared part (what makes
    a frame hard for every method: sd 1.5 dB, autocorrelation 0.95) plus each method's own
    deviations (sd 0.5 dB, autocorrelation 0.7); method a is ``shift`` dB better."""
    shared = 30 + ar1(0.95, 350, SIMULATED, rng, sd=1.5)
    return shared + shift + ar1(0.7, 350, SIMULATED, rng, sd=0.5), shared + ar1(0.7, 350, SIMULATED, rng, sd=0.5)


def test_paired_test_keeps_its_level_and_detects_a_real_shift():
    rng = np.random.default_rng(5)
    a, b = two_methods(rng)
    same = np.array([statistics.paired_difference([x], [y], resamples=RESAMPLES, seed=i).p_bootstrap
                     for i, (x, y) in enumerate(zip(a, b))])
    assert np.mean(same <= 0.05) <= 0.08, np.mean(same <= 0.05)
    a, b = two_methods(rng, shift=0.3)
    shifted = [statistics.paired_difference([x], [y], resamples=RESAMPLES, seed=i) for i, (x, y) in enumerate(zip(a, b))]
    assert np.mean([found.p_bootstrap <= 0.05 for found in shifted]) >= 0.85
    assert np.mean([found.low <= 0.3 <= found.high for found in shifted]) >= 0.90
    # the same frames unpaired: the shared part does not cancel, and the shift is lost in it
    assert np.mean([statistics.mean_interval([x]).low > statistics.mean_interval([y]).high for x, y in zip(a[:40], b[:40])]) < 0.5


def test_undefined_frames_are_left_out():
    values = np.array([5.0, np.nan] * 60)
    found = statistics.mean_interval([values], resamples=200)
    assert (found.mean, found.low, found.high, found.n_frames) == (5.0, 5.0, 5.0, 60)
    rng = np.random.default_rng(6)
    a, b = 30 + ar1(0.5, 200, 2, rng)
    a[::7] = np.nan
    b[3::11] = np.nan
    found = statistics.paired_difference([a], [b], resamples=200)
    both = ~np.isnan(a) & ~np.isnan(b)
    assert found.mean == pytest.approx(np.mean(a[both] - b[both]))
    assert found.n_frames == both.sum()
    empty = statistics.mean_interval([np.full(10, np.nan)])
    assert empty.n_frames == 0 and np.isnan([empty.mean, empty.low, empty.high]).all()
    single = statistics.mean_interval([np.array([31.0])])
    assert single.mean == 31.0 and single.n_frames == 1 and np.isnan(single.low)  # one frame: no interval
    infinite = statistics.mean_interval([np.array([np.inf, 30.0, 31.0, 32.0])])
    assert infinite.mean == np.inf and np.isnan(infinite.low)


def test_same_seed_same_numbers():
    rng = np.random.default_rng(7)
    sequences = list(30 + ar1(0.8, 120, 3, rng))
    first = statistics.mean_interval(sequences, seed=11)
    assert statistics.mean_interval(sequences, seed=11) == first
    assert statistics.mean_interval(sequences, seed=12) != first
    assert first.n_sequences == 3 and first.n_frames == 360


def test_wilcoxon_on_sequence_means_equals_scipy():
    rng = np.random.default_rng(8)
    lengths = [50, 80, 65, 120, 90, 70, 100, 55]
    a = [30 + 0.2 * i + ar1(0.7, n, 1, rng)[0] for i, n in enumerate(lengths)]
    b = [x - 0.1 + ar1(0.7, len(x), 1, rng)[0] * 0.3 for x in a]
    a[2][::5] = np.nan
    frames = pd.DataFrame({"sequence": np.repeat(np.arange(len(lengths)), lengths),
                           "a": np.concatenate(a), "b": np.concatenate(b)}).dropna()
    sequence_means = frames.groupby("sequence")[["a", "b"]].mean()
    expected = wilcoxon(sequence_means["a"], sequence_means["b"]).pvalue
    assert statistics.paired_difference(a, b, resamples=100).p_wilcoxon == pytest.approx(expected, rel=1e-12)
    assert np.isnan(statistics.paired_difference(a[:5], b[:5], resamples=100).p_wilcoxon)


def test_holm_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(9)
    for size in (1, 2, 5, 12):
        p = rng.uniform(0, 0.1, size) ** 1.5
        np.testing.assert_allclose(statistics.holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    p = np.array([0.01, np.nan, 0.04, 0.03])
    adjusted = statistics.holm(p)
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="holm")[1])


def test_kendall_tau_equals_scipy():
    scores_a = {"ours": 31.2, "insta": 30.1, "rig": 29.7, "sadtalker": 25.0, "pirender": 26.3}
    scores_b = {"rig": 0.91, "sadtalker": 0.80, "ours": 0.93, "pirender": 0.80, "insta": 0.90, "extra": 0.5}
    common = list(scores_a)
    expected = kendalltau([scores_a[m] for m in common], [scores_b[m] for m in common])
    tau, p = statistics.kendall_tau(scores_a, scores_b)
    assert (tau, p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)
    assert np.isnan(statistics.kendall_tau({"a": 1.0, "b": 2.0}, {"a": 2.0, "c": 1.0})).all()


def test_rolling_interval_covers_the_mean_where_a_naive_band_does_not():
    """AR(1) series of 300 frames with mean 0, windows of 31 frames: the band covers 0 at 93-99% of
    the frames of 200 series (a little over 95% for strongly correlated series, where the Student-t
    reference of few blocks is cautious), while a band from the window's own standard error, as if its
    frames were independent, covers far less once frames are correlated."""
    from scipy.stats import norm

    rng = np.random.default_rng(10)
    for phi in (0.3, 0.8):
        covered, naive = [], []
        for values in ar1(phi, 300, 200, rng):
            mean, low, high = statistics.rolling_interval(values, 31)
            covered.append(np.mean((low <= 0) & (0 <= high)))
            spread = pd.Series(values).rolling(31, center=True, min_periods=1).std().to_numpy()
            count = pd.Series(values).rolling(31, center=True, min_periods=1).count().to_numpy()
            naive.append(np.mean(np.abs(mean) <= norm.ppf(0.975) * spread / np.sqrt(count)))
            np.testing.assert_allclose(mean, pd.Series(values).rolling(31, center=True, min_periods=1).mean(), rtol=1e-9,
                                       atol=1e-12)
        assert 0.93 <= np.mean(covered) <= 0.99, (phi, np.mean(covered))
        if phi == 0.8:
            assert np.mean(naive) < 0.75, np.mean(naive)


def test_rolling_interval_over_the_whole_sequence_agrees_with_the_bootstrap():
    """A window covering every frame: the same variance the block bootstrap estimates (within the
    two estimators' noise), by another route (the flat-top autocovariance sum)."""
    rng = np.random.default_rng(11)
    ratios = []
    for values in 30 + ar1(0.7, 300, 60, rng):
        _, low, high = statistics.rolling_interval(values, 1000)
        found = statistics.mean_interval([values], resamples=RESAMPLES)
        assert np.ptp(high - low) < 1e-9  # one window everywhere
        ratios.append((high[0] - low[0]) / (found.high - found.low))
    assert np.median(ratios) == pytest.approx(1.0, abs=0.08)


def test_rolling_interval_gaps_and_degenerate_series():
    values = np.array([1.0, np.nan, np.nan, np.nan, 2.0, 3.0, 2.5, 1.5, np.inf, 2.0] * 3)
    mean, low, high = statistics.rolling_interval(values, 3)
    assert np.isnan(mean[2]) and np.isnan(low[2]) and np.isnan(high[2])  # a window of gaps only
    assert mean[5] == pytest.approx(2.5) and low[5] < 2.5 < high[5]
    constant = statistics.rolling_interval(np.full(50, 4.0), 9)
    assert (constant[1] == 4.0).all() and (constant[2] == 4.0).all()
    single = statistics.rolling_interval(np.array([3.0]), 5)
    assert single[0][0] == 3.0 and np.isnan(single[1][0])
    with pytest.raises(ValueError, match="window must be at least 1 frame"):
        statistics.rolling_interval(values, 0)
