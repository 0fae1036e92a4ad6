"""Set-level distances between feature distributions: FID (Fréchet distance) and KID (kernel MMD).

Conventions, and why:
- Feature statistics are accumulated in float64 in a streaming way (:class:`FeatureStatistics`:
  count, mean and the centred scatter matrix, merged batch by batch with Chan et al.'s pairwise
  update), so memory is O(d²) whatever the number of frames (d = 2048: 32 MiB), and the
  covariance equals ``numpy.cov(features, rowvar=False)`` (unbiased, n - 1), the estimate
  pytorch-fid, clean-fid and torch-fidelity use.
- :func:`frechet_distance` is the published computation (pytorch-fid's and clean-fid's
  ``calculate_frechet_distance``): ``|mu1 - mu2|² + Tr(S1) + Tr(S2) - 2 Tr(sqrtm(S1 S2))`` with
  ``scipy.linalg.sqrtm``, the same eps = 1e-6 diagonal offset when the product is singular and
  the same rejection of a square root with a large imaginary part.
- :func:`frechet_distance_features` is the same distance from the features themselves, exact and
  cheap when a set has fewer frames than dimensions: Tr sqrt(S1 S2) is the nuclear norm of
  ``Xc1 Xc2ᵀ / sqrt((n1-1)(n2-1))`` (the nonzero eigenvalues of S1 S2 are the squared singular
  values of that n1 x n2 matrix). It serves the bootstrap, where sqrtm of a 2048² matrix per
  resample would cost seconds.
- :func:`kid` is torch-fidelity's KID (after Binkowski et al.'s MMD-GAN code, which clean-fid
  follows too): the unbiased MMD² with the polynomial kernel ``(x·y / d + 1)³`` averaged over
  ``subsets`` random subsets of ``subset_size`` frames drawn from
  ``numpy.random.RandomState(seed)`` (generated set first, then the real set, per subset), its
  standard deviation over subsets beside it. Kernels are computed in float64 (torch-fidelity
  multiplies float32 features in float32).
- FID is biased upward at small N (its expectation falls roughly like 1/N; Chong & Forsyth 2020):
  values computed on different numbers of frames are not comparable, which is why every set value
  is reported with its frame counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020  # torch-fidelity's default rng_seed


class FeatureStatistics:
    """Running count, mean and centred scatter (sum of (x - mean)(x - mean)ᵀ) of feature vectors, float64."""

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self.mean = np.zeros(dim, np.float64)
        self.scatter = np.zeros((dim, dim), np.float64)

    def update(self, features: np.ndarray) -> FeatureStatistics:
        """Add a batch of features (n, dim)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"expected features of shape (n, {self.dim}), got {features.shape}")
        if len(features) == 0:
            return self
        mean = features.mean(axis=0)
        centred = features - mean
        self._merge(len(features), mean, centred.T @ centred)
        return self

    def merge(self, other: FeatureStatistics) -> FeatureStatistics:
        """Add another set's statistics (Chan et al.'s pairwise combination)."""
        if other.count:
            self._merge(other.count, other.mean, other.scatter)
        return self

    def _merge(self, count: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        total = self.count + count
        delta = mean - self.mean
        self.scatter += scatter + np.outer(delta, delta) * (self.count * count / total)
        self.mean += delta * (count / total)
        self.count = total

    @property
    def covariance(self) -> np.ndarray:
        """The unbiased covariance (divided by n - 1), as ``numpy.cov(features, rowvar=False)``."""
        return self.covariance_over(ddof=1)

    def covariance_over(self, ddof: int) -> np.ndarray:
        """The scatter divided by n - ``ddof`` (1: ``numpy.cov``; 0: StyleGAN2-ADA's ``FeatureStats``)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        return self.scatter / (self.count - ddof)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed as pytorch-fid does."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature statistics of different sizes: {mu1.shape} and {mu2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():  # singular product: pytorch-fid's offset
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"the matrix square root has an imaginary component {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) of two covariances, as Tr sqrt(S1^1/2 S2 S1^1/2): two symmetric eigen-decompositions
    (the eigenvalues of S1 S2 are those of that PSD matrix), several times faster than the general
    ``scipy.linalg.sqrtm`` of S1 S2 and free of its complex round-off; eigenvalues at round-off level
    (the null space of a rank-deficient covariance) count as 0."""
    values, vectors = np.linalg.eigh(sigma1)
    root = (vectors * np.sqrt(_significant(values))) @ vectors.T
    return float(np.sqrt(_significant(np.linalg.eigvalsh(root @ sigma2 @ root))).sum())


def _significant(values: np.ndarray) -> np.ndarray:
    """Eigenvalues with those below round-off (|v| <= n eps max|v|) set to 0: the square roots of the
    many zero eigenvalues of a covariance of fewer frames than dimensions would otherwise add up
    (2000 x sqrt(1e-16) is not negligible)."""
    limit = len(values) * np.finfo(np.float64).eps * np.max(np.abs(values), initial=0.0)
    return np.where(values > limit, values, 0.0)


def fid_from_statistics(first: FeatureStatistics, second: FeatureStatistics, ddof: int = 1) -> float:
    """The Fréchet distance of two running statistics (:func:`trace_sqrt_product` for the square root;
    equal to :func:`frechet_distance`'s sqrtm path within 1e-6 relative, tested); covariances divided
    by n - ``ddof``."""
    diff = first.mean - second.mean
    sigma1, sigma2 = first.covariance_over(ddof), second.covariance_over(ddof)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_features(first: np.ndarray, second: np.ndarray, ddof: int = 1) -> float:
    """The Fréchet distance of two feature sets (n1, d), (n2, d), exactly, without a d x d square root
    when a set is smaller than d (see the module docstring). ``ddof``: the covariances divide the
    scatter by n - ddof (1: ``numpy.cov``; 0: StyleGAN-V's FID and FVD statistics)."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    n1, n2 = len(first), len(second)
    mu1, mu2 = first.mean(axis=0), second.mean(axis=0)
    a1 = (first - mu1) / np.sqrt(n1 - ddof)
    a2 = (second - mu2) / np.sqrt(n2 - ddof)
    diff = mu1 - mu2
    if min(n1, n2) <= first.shape[1]:
        trace_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    else:
        trace_sqrt = trace_sqrt_product(a1.T @ a1, a2.T @ a2)
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2 * trace_sqrt)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(x·yᵀ / d + coef0) ** degree``, gamma = 1/d (torch-fidelity's and clean-fid's KID kernel)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """The unbiased MMD² estimate: off-diagonal means of K_xx and K_yy, minus twice the mean of K_xy."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


@dataclass(frozen=True)
class KID:
    """KID's mean and standard deviation over ``subsets`` subsets of ``subset_size`` frames."""

    mean: float
    std: float
    subsets: int
    subset_size: int


def kid(generated: np.ndarray, real: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int | None = KID_SUBSET_SIZE,
        seed: int = KID_SEED) -> KID:
    """torch-fidelity's KID of ``generated`` against ``real`` features (see the module docstring).

    subset_size: frames per subset; None or more frames than a set has: the smaller set's size
    (torch-fidelity refuses a subset larger than a set; the size used is returned and recorded).
    """
    generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
    size = min(len(generated), len(real)) if subset_size is None else min(subset_size, len(generated), len(real))
    if size < 2:
        raise ValueError(f"KID needs at least 2 frames in each set, got {len(generated)} and {len(real)}")
    rng = np.random.RandomState(seed)
    values = np.zeros(subsets)
    for index in range(subsets):
        x = generated[rng.choice(len(generated), size, replace=False)]
        y = real[rng.choice(len(real), size, replace=False)]
        values[index] = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y))
    return KID(float(values.mean()), float(values.std()), subsets, size)


def block_bootstrap_indices(count: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of one moving-block bootstrap resample of ``count`` consecutive frames: blocks of
    ``block`` frames starting at uniformly drawn positions, concatenated and cut to ``count``
    (video frames are correlated; resampling single frames would understate the spread)."""
    block = max(1, min(block, count))
    starts = rng.integers(0, count - block + 1, size=-(-count // block))
    return (starts[:, None] + np.arange(block)).ravel()[:count]


def default_block(count: int) -> int:
    """The bootstrap block length: about n^(1/3) frames (the usual rate for a moving-block bootstrap)."""
    return max(1, round(count ** (1 / 3)))


def block_bootstrap_interval(statistic: Callable[[np.ndarray, np.ndarray], float], generated: np.ndarray,
                             real: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of ``statistic`` over ``resamples`` moving-block bootstrap resamples,
    each set resampled on its own (blocks of :func:`default_block` consecutive rows, generator seeded
    ``seed``); NaN, NaN when ``resamples`` is 0."""
    if not resamples:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        x = generated[block_bootstrap_indices(len(generated), default_block(len(generated)), rng)]
        y = real[block_bootstrap_indices(len(real), default_block(len(real)), rng)]
        draws.append(statistic(x, y))
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)
