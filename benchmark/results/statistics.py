"""How sure a mean over video frames is, and whether two methods differ: block-bootstrap statistics.

Adjacent frames of a video score alike (a hard head turn lowers PSNR for a second, not for one
frame), so the per-frame values of a sequence are a strongly autocorrelated series, and an i.i.d.
bootstrap over frames, which treats 350 frames as 350 independent draws, gives intervals that are
far too narrow. The statistics here resample what is independent:

- **Sequences** (subjects, clips), when a summary pools several: they are drawn with replacement.
- **Contiguous blocks of frames** within each drawn sequence: the circular block bootstrap
  (Politis & Romano 1992, "A circular block-resampling procedure for stationary data"): blocks of
  ``b`` consecutive frames start anywhere and wrap around the end, so every frame is equally
  likely to be drawn and the bootstrap mean is centred on the sample mean. It has a smaller
  variance-estimation error than the stationary bootstrap's random block lengths (Lahiri 1999,
  Annals of Statistics 27(1)), and a fixed block length lets a resample be drawn as block sums.

Block-length rule (:func:`block_lengths`): the automatic rule of Politis & White (2004),
"Automatic block-length selection for the dependent bootstrap", Econometric Reviews 23(1), with the
correction of Patton, Politis & White (2009), Econometric Reviews 28(4), for the circular block
bootstrap: ``b = (2 G² / D)^(1/3) n^(1/3)`` with ``G = Σ λ(k/M) |k| γ(k)``, ``D = 4/3 (Σ λ(k/M) γ(k))²``,
``λ`` the flat-top window and ``M`` twice the first lag after which ``K = max(5, ⌊log10 n⌋)``
consecutive autocorrelations are insignificant (``|ρ| < 2 √(log10 n / n)``; the lags, and ``ρ`` itself,
as the ``arch`` package estimates them, so that the length is ``arch.bootstrap.optimal_block_length``'s
circular one for every series, tested), capped at ``⌈min(3 √n, n / 3)⌉`` and at least one frame. The more persistent the
series, the longer the blocks; white noise gets about one frame. That length minimises the mean
squared error of the bootstrap variance, balancing its bias (too small by about ``G / b``, Künsch
1989) against its randomness. An interval suffers from the bias but not from the randomness, which
the Student-t reference below already accounts for, so the blocks resampled are
:data:`BLOCK_FACTOR` (2) times that length, at most a third of the sequence, and rounded up to
whole frames: on AR(1) series (two simulations of 400 series each) this brings the coverage of the
95% interval from about 90% to 93% at an autocorrelation of 0.8, and the rejection rate of a true null
at 0.05 from about 6% to 4%, for a few points of power (tests/test_statistics.py, README).

The two-stage resampling of several sequences (sequences with replacement, then blocks within)
counts the within-sequence noise once more than a single-stage scheme would (Davison & Hinkley 1997,
"Bootstrap Methods and their Application", section 3.8), so with several sequences the intervals
err on the wide side; that is the safe side for a claim that one method beats another, and it
keeps an interval informative when a dataset has only two or three sequences, where resampling
whole sequences alone has almost nothing to draw from.

Undefined frames: a NaN value (a face metric on a frame without a detected face, the first frame of a
pair metric) is not a value: the mean is over the defined frames, as in the summaries, and each
resample's mean is the sum of its defined values over their count (a ratio estimator), so NaN frames
keep their place in time (blocks stay contiguous) and the share of defined frames varies between
resamples as it would between recordings. Infinite values (PSNR of identical frames) make the mean
infinite; its interval is then NaN, not a number.

Intervals and p-values come from the bootstrap standard error: ``mean ± t · se`` with Student's t on
``K - 1`` degrees of freedom, ``K`` the number of blocks a resample is made of, and ``se`` the standard
deviation of the bootstrap means times ``√(K / (K - 1))`` (see :func:`_bootstrap`: the circular block
bootstrap's variance is an overlapping-batch-means estimate, low by ``1 - b/n`` and estimated from
about ``K`` independent blocks). A p-value is two-sided, ``2 P(T_{K-1} >= |mean| / se)``, so it is the
smallest level whose interval excludes zero, is not limited to multiples of ``1 / resamples``, and
needs no normality of the frames (the block means carry the central limit theorem).
Measured coverage of the 95% interval on AR(1) series of 300 frames: 92-96% for autocorrelations
from 0 to 0.8, about 91% at 0.9 (an effective sample of 16 independent frames), where any block
bootstrap falls short.
Everything is vectorised over resamples and deterministic for a seed (a NumPy ``SeedSequence``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000
MAX_RESAMPLES = 100_000
"""The most resamples an estimate may draw: a resample holds one block start per block of the
sequence (2 bytes each below 65,536 frames), so 100,000 resamples of a 2,000-frame sequence with
blocks of one frame take 0.4 GB; the Monte Carlo error of a 95% bound is then about 0.2% of the
interval's half-width (1.6% at the default 2,000)."""
# the Wilcoxon signed-rank test on per-sequence means needs this many sequences: with five or fewer,
# its exact two-sided p-value cannot fall below 2 / 2^5 = 0.0625, so it could never reject at 0.05
WILCOXON_MIN_SEQUENCES = 6
# resampled blocks are this many times the Politis-White length, at most a third of the sequence
# (see the module docstring: why longer blocks than the variance-optimal ones)
BLOCK_FACTOR = 2.0

SeedLike = int | Sequence[int] | np.random.SeedSequence


@dataclass(frozen=True)
class MeanInterval:
    """The mean over the defined frames with its block-bootstrap interval.

    ``block_length`` is the frame-weighted mean block length of the sequences (1 for white noise).
    """

    mean: float
    low: float
    high: float
    n_frames: int
    n_sequences: int
    block_length: float


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over the frames where both are defined, its interval and p-values.

    ``p_wilcoxon`` is NaN with fewer than :data:`WILCOXON_MIN_SEQUENCES` sequences.
    """

    mean: float
    low: float
    high: float
    p_bootstrap: float
    p_wilcoxon: float
    n_frames: int
    n_sequences: int
    block_length: float


@dataclass(frozen=True)
class _FlatTop:
    """Autocovariances of each row of a series with the flat-top lag window of Politis & White."""

    n: np.ndarray          # (R,) defined values per row
    acv: np.ndarray        # (R, L + 1) autocovariances at lags 0..L (a lag product with a gap counts as zero)
    weights: np.ndarray    # (R, L) the flat-top window λ(k / M) at lags 1..L (0 beyond M)
    constant: np.ndarray   # (R,) rows too short or constant to estimate anything from

    @property
    def long_run(self) -> np.ndarray:
        """The flat-top estimate of the long-run variance ``Σ_k γ(k)``: ``n`` times the variance of the mean."""
        return self.acv[:, 0] + (2 * self.weights * self.acv[:, 1:]).sum(axis=1)


def _flat_top(series: np.ndarray) -> _FlatTop | None:
    """The lag window of :func:`block_lengths` (see there); None for series of one frame."""
    values = np.atleast_2d(np.asarray(series, dtype=np.float64))
    rows, length = values.shape
    defined = np.isfinite(values)
    n = defined.sum(axis=1)
    safe_n = np.maximum(n, 1)
    centred = np.where(defined, values, 0.0)
    centred = np.where(defined, centred - (centred.sum(axis=1) / safe_n)[:, None], 0.0)

    log_n = np.log10(np.maximum(n, 2))
    window = np.maximum(5, np.floor(log_n)).astype(int)  # K: consecutive insignificant lags
    m_max = np.minimum(np.ceil(np.sqrt(n)).astype(int) + window, max(length - 1, 0))
    lags = int(m_max.max(initial=0))
    if lags == 0:  # one frame: nothing to correlate
        return None
    acv = np.stack([(centred[:, k:] * centred[:, : length - k]).sum(axis=1) for k in range(lags + 1)], axis=1) / safe_n[:, None]
    variance = acv[:, 0]
    scale = np.where(defined, np.abs(values), 0.0).max(axis=1, initial=0.0)
    constant = (n < 2) | (variance <= (1e-12 * np.maximum(scale, 1e-300)) ** 2)
    # The autocorrelation whose significance picks the window, as arch's ``optimal_block_length``
    # estimates it: the lag-k cross product over the square roots of the sums of squares of the values
    # that have a partner k + 1 frames later and k + 1 frames earlier (arch's v1, v2; without gaps, the
    # first and the last n - k - 1 values). Politis & White's own ratio, acv_k / acv_0, differs from it
    # by O(k / n) and moved the choice of the window, and so the length, in 8 and 18 of 300 AR(1)
    # series at phi 0.5 and 0.9; with arch's the lengths are arch's (tests/test_statistics.py).
    squares = centred * centred
    present = defined.astype(np.float64)
    later = np.stack([(squares[:, k + 1:] * present[:, : length - k - 1]).sum(axis=1) for k in range(lags + 1)], axis=1)
    earlier = np.stack([(squares[:, : length - k - 1] * present[:, k + 1:]).sum(axis=1) for k in range(lags + 1)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.abs(acv * safe_n[:, None]) / np.sqrt(later * earlier)
        significant = ~(correlation < 2 * np.sqrt(log_n / safe_n)[:, None])

    # m̂: the first lag m >= 1 whose K lags m .. m+K-1 are insignificant, the last of them below m_max
    # (arch looks at lags 0 .. m_max - 1; lag 0 is never insignificant)
    counts = np.concatenate([np.zeros((rows, 1), int), np.cumsum(significant, axis=1)], axis=1)
    starts = np.arange(1, lags + 1)
    ends = np.minimum(starts[None, :] + window[:, None], lags + 1)
    quiet = (np.take_along_axis(counts, ends, axis=1) - counts[:, starts] == 0)
    quiet &= starts[None, :] + window[:, None] - 1 <= m_max[:, None] - 1
    found = quiet.any(axis=1)
    m_hat = np.where(found, np.argmax(quiet, axis=1) + 1, 0)
    big_m = np.where(found, np.minimum(2 * np.maximum(m_hat, 1), m_max), m_max)

    k = np.arange(1, lags + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = k[None, :] / big_m[:, None]
    flat_top = np.where(ratio <= 0.5, 1.0, 2.0 * (1.0 - ratio))
    flat_top = np.where(k[None, :] <= big_m[:, None], flat_top, 0.0)
    return _FlatTop(n, acv, flat_top, constant | (big_m == 0))


def block_lengths(series: np.ndarray) -> np.ndarray:
    """Circular-block-bootstrap block length of each row of ``series`` (R, T), in frames (float, >= 1).

    The rule of Politis & White (2004) with its 2009 correction (see the module docstring). NaN
    entries are gaps: the series is centred on the mean of its defined values, a lag product with a
    gap counts as zero, ``n`` is the number of defined values. A constant series gets 1.
    """
    rows = np.atleast_2d(np.asarray(series, dtype=np.float64)).shape[0]
    window = _flat_top(series)
    if window is None:
        return np.ones(rows)
    k = np.arange(1, window.weights.shape[1] + 1, dtype=np.float64)
    g = (2 * window.weights * k[None, :] * window.acv[:, 1:]).sum(axis=1)
    safe_n = np.maximum(window.n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        optimal = (2 * g**2 / (4 / 3 * window.long_run**2)) ** (1 / 3) * safe_n ** (1 / 3)
    cap = np.ceil(np.minimum(3 * np.sqrt(safe_n), safe_n / 3))
    optimal = np.where(np.isfinite(optimal), np.minimum(optimal, cap), cap)
    return np.where(window.constant, 1.0, np.maximum(optimal, 1.0))


def _circular_block_sums(values: np.ndarray, block: int) -> np.ndarray:
    """Sums of the ``len(values)`` circular blocks of length ``block`` (block i starts at frame i)."""
    wrapped = np.concatenate([values, np.tile(values, block // len(values) + 1)[:block]])
    cumulative = np.concatenate([[0.0], np.cumsum(wrapped)])
    starts = np.arange(len(values))
    return cumulative[starts + block] - cumulative[starts]


def _within_resamples(values: np.ndarray, block: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` circular-block resamples of one sequence: (sum of defined values, number defined).

    A resample is ``ceil(T / b)`` blocks, the last cut to make ``T`` frames; it is drawn as block
    sums (prefix sums of the wrapped series), so its cost is the number of blocks, not of frames.
    """
    length = len(values)
    defined = np.isfinite(values)
    filled = np.where(defined, values, 0.0)
    block = int(min(max(block, 1), length))
    blocks = -(-length // block)
    last = length - (blocks - 1) * block
    # the narrowest index type: drawing and gathering small integers is the cost of a resample
    starts = rng.integers(0, length, size=(count, blocks), dtype=np.uint16 if length < 2**16 else np.int64)
    sums = _circular_block_sums(filled, block)[starts[:, :-1]].sum(axis=1)
    sums += _circular_block_sums(filled, last)[starts[:, -1]]
    if defined.all():
        return sums, np.full(count, float(length))
    weight = defined.astype(np.float64)
    weights = _circular_block_sums(weight, block)[starts[:, :-1]].sum(axis=1)
    weights += _circular_block_sums(weight, last)[starts[:, -1]]
    return sums, weights


def bootstrap_means(sequences: Sequence[np.ndarray], resamples: int = RESAMPLES, seed: SeedLike = 0,
                    blocks: Sequence[float] | None = None) -> np.ndarray:
    """The bootstrap distribution (``resamples``,) of the mean over the defined frames of ``sequences``.

    One sequence: circular block bootstrap of its frames. Several: each resample draws as many
    sequences with replacement, and each drawn copy gets its own block resample. ``blocks`` overrides
    the block length per sequence (1 gives the i.i.d. bootstrap over frames). A resample without a
    defined frame is NaN.
    """
    arrays = [np.asarray(s, dtype=np.float64).ravel() for s in sequences]
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return np.full(resamples, np.nan)
    if blocks is None:
        blocks = _sequence_block_lengths(arrays)
    blocks = np.ceil(np.asarray(blocks, dtype=np.float64))
    rng = np.random.default_rng(seed)
    if len(arrays) == 1:
        sums, weights = _within_resamples(arrays[0], int(blocks[0]), resamples, rng)
    else:
        drawn = rng.integers(0, len(arrays), size=(resamples, len(arrays)))
        copies = _copies(drawn, len(arrays))
        sums, weights = np.zeros(resamples), np.zeros(resamples)
        owners = np.arange(resamples)
        for index, values in enumerate(arrays):
            owner = np.repeat(owners, copies[:, index])
            part_sums, part_weights = _within_resamples(values, int(blocks[index]), len(owner), rng)
            sums += np.bincount(owner, part_sums, minlength=resamples)
            weights += np.bincount(owner, part_weights, minlength=resamples)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weights > 0, sums / np.where(weights > 0, weights, 1.0), np.nan)


def _copies(drawn: np.ndarray, count: int) -> np.ndarray:
    """(resamples, count): how many times each sequence was drawn in each resample."""
    copies = np.zeros((drawn.shape[0], count), dtype=np.int64)
    np.add.at(copies, (np.repeat(np.arange(drawn.shape[0]), drawn.shape[1]), drawn.ravel()), 1)
    return copies


def _sequence_block_lengths(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Block length of each (1-D) array, computed together on a NaN-padded matrix."""
    width = max(len(a) for a in arrays)
    padded = np.full((len(arrays), width), np.nan)
    for row, values in enumerate(arrays):
        padded[row, : len(values)] = values
    return block_lengths(padded)


def _pooled_mean(arrays: Sequence[np.ndarray]) -> tuple[float, int]:
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.empty(0)
    defined = values[~np.isnan(values)]
    return (float(defined.mean()) if len(defined) else np.nan), int(len(defined))


@dataclass(frozen=True)
class _Bootstrap:
    mean: float
    standard_error: float
    dof: float
    n_frames: int
    n_sequences: int
    block_length: float

    def interval(self, level: float) -> tuple[float, float]:
        if not (np.isfinite(self.mean) and np.isfinite(self.standard_error)):
            return np.nan, np.nan
        from scipy.stats import t

        half = float(t.ppf((1 + level) / 2, self.dof)) * self.standard_error
        return self.mean - half, self.mean + half

    def p_value(self) -> float:
        """Two-sided p-value of a true mean of zero."""
        if not (np.isfinite(self.mean) and np.isfinite(self.standard_error)):
            return np.nan
        if self.standard_error == 0:
            return 1.0 if self.mean == 0 else 0.0
        from scipy.stats import t

        return float(2 * t.sf(abs(self.mean) / self.standard_error, self.dof))


def _bootstrap(arrays: Sequence[np.ndarray], resamples: int, seed: SeedLike) -> _Bootstrap:
    """Mean, block-bootstrap standard error and degrees of freedom of the pooled mean of ``arrays``.

    ``K`` = the number of blocks a resample draws (over all sequences). The bootstrap variance
    of the circular block bootstrap is the overlapping-batch-means estimator with batch size ``b``,
    which is low by the factor ``1 - b/n`` = ``(K - 1) / K`` (the mean is estimated from the same
    frames) and is itself estimated from about ``K`` independent blocks; so the standard error
    is ``√(K / (K - 1))`` times the standard deviation of the bootstrap means and the reference
    distribution is Student's t with ``K - 1`` degrees of freedom (Hesterberg 2015, "What teachers
    should know about the bootstrap", The American Statistician 69(4): the expanded interval, with
    blocks in place of observations).
    """
    arrays = [a for a in arrays if len(a) and not np.isnan(a).all()]
    mean, n_frames = _pooled_mean(arrays)
    if not arrays:
        return _Bootstrap(np.nan, np.nan, np.nan, 0, 0, np.nan)
    lengths = np.array([len(a) for a in arrays])
    blocks = np.ceil(np.minimum(BLOCK_FACTOR * _sequence_block_lengths(arrays), np.maximum(lengths / 3, 1)))
    block = float(np.average(blocks, weights=lengths))
    count = float(np.sum(np.ceil(lengths / blocks)))
    if not np.isfinite(mean) or count < 2:
        return _Bootstrap(mean, np.nan, np.nan, n_frames, len(arrays), block)
    distribution = bootstrap_means(arrays, resamples, seed, blocks)
    usable = distribution[np.isfinite(distribution)]
    if len(usable) < max(2, 0.9 * len(distribution)):  # most resamples drew no defined frame
        return _Bootstrap(mean, np.nan, np.nan, n_frames, len(arrays), block)
    standard_error = float(np.std(usable, ddof=1) * np.sqrt(count / (count - 1)))
    return _Bootstrap(mean, standard_error, count - 1, n_frames, len(arrays), block)


def _check(level: float, resamples: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not 2 <= resamples <= MAX_RESAMPLES:
        raise ValueError(f"resamples must be from 2 to {MAX_RESAMPLES}, got {resamples}")


def mean_interval(sequences: Sequence[np.ndarray], level: float = LEVEL, resamples: int = RESAMPLES,
                  seed: SeedLike = 0) -> MeanInterval:
    """Mean over the defined frames of ``sequences`` (each a 1-D per-frame series in frame order)
    with its ``level`` block-bootstrap interval (see the module docstring)."""
    _check(level, resamples)
    estimate = _bootstrap([np.asarray(s, dtype=np.float64).ravel() for s in sequences], resamples, seed)
    low, high = estimate.interval(level)
    return MeanInterval(estimate.mean, low, high, estimate.n_frames, estimate.n_sequences, estimate.block_length)


def paired_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray], level: float = LEVEL,
                      resamples: int = RESAMPLES, seed: SeedLike = 0) -> PairedDifference:
    """Paired comparison of two methods on the same frames: ``a[i]`` and ``b[i]`` are the per-frame
    values of sequence ``i``, frame by frame. A frame undefined in either is left out of both.

    The difference series ``a - b`` is block-bootstrapped as in :func:`mean_interval` (the same
    blocks for both methods, so what the frames share cancels); the p-value tests a mean difference of
    zero. The Wilcoxon signed-rank test on the per-sequence mean differences
    (:func:`wilcoxon_sequences`) is added with at least :data:`WILCOXON_MIN_SEQUENCES` sequences.
    """
    _check(level, resamples)
    if len(a) != len(b):
        raise ValueError(f"paired_difference needs the same sequences for both methods, got {len(a)} and {len(b)}")
    differences = []
    for index, (left, right) in enumerate(zip(a, b)):
        left, right = np.asarray(left, dtype=np.float64).ravel(), np.asarray(right, dtype=np.float64).ravel()
        if left.shape != right.shape:
            raise ValueError(f"sequence {index}: {len(left)} frames against {len(right)}; pair the frames first")
        with np.errstate(invalid="ignore"):
            differences.append(left - right)
    estimate = _bootstrap(differences, resamples, seed)
    low, high = estimate.interval(level)
    defined = [d for d in differences if np.isfinite(d).any()]
    p_wilcoxon = wilcoxon_sequences(defined) if len(defined) >= WILCOXON_MIN_SEQUENCES else np.nan
    return PairedDifference(estimate.mean, low, high, estimate.p_value(), p_wilcoxon, estimate.n_frames,
                            estimate.n_sequences, estimate.block_length)


def wilcoxon_sequences(differences: Sequence[np.ndarray]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, its default
    method) on the per-sequence means of the defined paired differences.

    It asks whether one method is better on a typical sequence, whatever the sizes of the
    sequences; NaN when fewer than two sequences differ or all differences are zero.
    """
    from scipy.stats import wilcoxon

    means = np.array([np.nanmean(d) if np.isfinite(d).any() else np.nan for d in differences], dtype=np.float64)
    means = means[np.isfinite(means)]
    if np.count_nonzero(means) < 2:
        return np.nan
    return float(wilcoxon(means).pvalue)


def rolling_interval(values: np.ndarray, window: int, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) per frame: the mean over the centred window of ``window`` frames of one
    sequence's series (1-D, frame order) and its ``level`` interval, for shading a per-frame trace.

    Frame ``t``'s window is frames ``t - window // 2`` to ``t + (window - 1) // 2``, cut at the ends of
    the sequence; its mean is over its ``w`` defined frames. A window is too short to estimate its own
    dependence from, so the whole sequence's is used: the variance of a ``w``-frame mean is
    ``(1/w) Σ_{|k|<w} (1 - |k|/w) λ(k/M) γ(k)``, with the autocovariances ``γ`` and the flat-top
    window ``λ`` of the whole sequence (those that choose its block length, see
    :func:`block_lengths`; with ``w = n`` it is the flat-top estimate of the variance of the whole
    sequence's mean, the variance its block bootstrap estimates), and the interval is
    ``mean ± t · sd`` with Student's t on ``K - 1`` degrees of freedom, ``K`` the blocks of the
    sequence's bootstrap as in :func:`mean_interval`. So the band is wide where the frames are few or
    strongly correlated and follows the level of the series locally. NaN and infinite values are
    gaps; the band is NaN where a window has no defined frame or the sequence has no interval.
    """
    from scipy.stats import t

    _check(level, 2)
    series = np.asarray(values, dtype=np.float64).ravel()
    length = len(series)
    if window < 1:
        raise ValueError(f"window must be at least 1 frame, got {window}")
    defined = np.isfinite(series)
    cumulative = np.concatenate([[0.0], np.cumsum(np.where(defined, series, 0.0))])
    counted = np.concatenate([[0], np.cumsum(defined)])
    frames = np.arange(length)
    first, last = np.maximum(frames - window // 2, 0), np.minimum(frames + (window - 1) // 2, length - 1)
    count = counted[last + 1] - counted[first]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, (cumulative[last + 1] - cumulative[first]) / count, np.nan)
    nan = np.full(length, np.nan)
    estimate = _flat_top(series[None, :]) if defined.sum() >= 2 else None
    if estimate is None:
        return mean, nan, nan.copy()
    n = int(estimate.n[0])
    block = np.ceil(min(BLOCK_FACTOR * float(block_lengths(series[None, :])[0]), max(n / 3, 1)))
    blocks = int(np.ceil(n / block))
    if blocks < 2:
        return mean, nan, nan.copy()
    lags = np.arange(1, estimate.weights.shape[1] + 1, dtype=np.float64)
    safe = np.maximum(count, 1)[:, None].astype(np.float64)
    taper = np.clip(1.0 - lags[None, :] / safe, 0.0, None)  # (1 - k/w) for k < w, else 0
    gamma0 = float(estimate.acv[0, 0])
    total = gamma0 + 2 * (taper * (estimate.weights[0] * estimate.acv[0, 1:])[None, :]).sum(axis=1)
    total = np.where(total > 0, total, gamma0)  # the flat-top sum need not be positive
    half = float(t.ppf((1 + level) / 2, blocks - 1)) * np.sqrt(total / safe[:, 0])
    half = np.where(count > 0, half, np.nan)
    return mean, mean - half, mean + half


def estimate_seed(seed: int, *names: object) -> np.random.SeedSequence:
    """The seed of one estimate: from the run's ``seed`` and a stable hash (CRC-32) of the names of
    what it estimates (dataset, method, column, ...), so that every estimate draws from its
    own stream and adding a method or a metric to a run leaves the other numbers unchanged."""
    import zlib

    return np.random.SeedSequence([int(seed), *(zlib.crc32(str(name).encode()) for name in names)])


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values: compare each with the level of the whole family.

    ``p_(i)`` (sorted ascending, ``m`` tests) becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
    rejecting where the adjusted value is at most alpha keeps the family-wise error rate at alpha.
    NaN entries (a test that could not be run) stay NaN and do not count in ``m``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    if not len(present):
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def kendall_tau(scores_a: Mapping[str, float], scores_b: Mapping[str, float]) -> tuple[float, float]:
    """Kendall's tau-b (``scipy.stats.kendalltau``) and its p-value between two rankings of methods,
    given as {method: score} for a metric of one direction (ranks follow the scores, so tau of the scores
    is tau of the rankings). Methods absent or undefined in either are left out; NaN below two."""
    from scipy.stats import kendalltau

    common = [m for m in scores_a if m in scores_b and np.isfinite(scores_a[m]) and np.isfinite(scores_b[m])]
    if len(common) < 2:
        return np.nan, np.nan
    result = kendalltau([scores_a[m] for m in common], [scores_b[m] for m in common])
    return float(result.statistic), float(result.pvalue)
