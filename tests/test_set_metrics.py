"""Set-level metrics (FID, KID) and CPBD against their reference implementations and closed forms.

The reference numbers in ``tests/calibration/set_metrics.csv`` were produced by pytorch-fid,
torch-fidelity and the ``cpbd`` package run outside the project on the recipe's inputs
(``tests/set_metrics_recipe.py``; how: ``tests/calibration/run_set_references.py``).
"""

from __future__ import annotations

import csv
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

sys.path.insert(0, str(Path(__file__).parent))

from set_metrics_recipe import CASES, TABLE, make_set  # noqa: E402

from metrics import fid as kernels  # noqa: E402
from metrics.cpbd import cpbd, grayscale  # noqa: E402


def reference(metric: str, reference_name: str) -> dict[tuple[str, int], float]:
    with open(TABLE / "set_metrics.csv", newline="") as handle:
        return {(row["case"], int(row["frame"])): float(row["value"]) for row in csv.DictReader(handle)
                if row["metric"] == metric and row["reference"] == reference_name}


@cache
def inputs(case: str) -> tuple[np.ndarray, np.ndarray]:
    return make_set(CASES[case])


# ----------------------------------------------------------------------------------------- CPBD


@pytest.mark.parametrize("case", sorted(CASES))
def test_cpbd_equals_the_cpbd_package(case):
    real, fake = inputs(case)
    for role, frames in (("real", real), ("fake", fake)):
        expected = reference(f"cpbd_{role}", "cpbd")
        got = [cpbd(grayscale(frame)) for frame in frames]
        want = [expected[(case, index)] for index in range(len(frames))]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=f"{case} {role}")


def test_cpbd_blur_lowers_sharpness_and_flat_frames_score_zero():
    real, _ = inputs("photos-256x256")
    import cv2

    sharp = np.mean([cpbd(grayscale(frame)) for frame in real[:4]])
    blurred = np.mean([cpbd(grayscale(cv2.GaussianBlur(frame, (0, 0), 3.0))) for frame in real[:4]])
    assert blurred < sharp
    assert cpbd(np.full((128, 128), 77, np.uint8)) == 0.0
    assert cpbd(np.zeros((32, 40), np.uint8)) == 0.0  # smaller than one 64 x 64 block


# ------------------------------------------------------------------------------------- kernels


def test_streaming_statistics_equal_numpy_whatever_the_batches():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((203, 17)) * rng.uniform(0.1, 5, 17) + rng.uniform(-3, 3, 17)
    for splits in ([203], [1, 2, 200], [50] * 4 + [3], list(range(1, 21)) + [-sum(range(1, 21)) + 203]):
        stats, start = kernels.FeatureStatistics(17), 0
        for size in splits:
            stats.update(features[start : start + size])
            start += size
        np.testing.assert_allclose(stats.mean, features.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False), rtol=1e-10, atol=1e-12)
    halves = kernels.FeatureStatistics(17).update(features[:90]).merge(kernels.FeatureStatistics(17).update(features[90:]))
    np.testing.assert_allclose(halves.covariance, np.cov(features, rowvar=False), rtol=1e-10, atol=1e-12)


def test_frechet_distance_of_gaussians_has_its_closed_form():
    # diagonal covariances: |mu1 - mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2))
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert kernels.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n1, n2, d", [(30, 40, 64), (80, 90, 12)])
def test_frechet_distance_from_features_equals_the_sqrtm_form(n1, n2, d):
    rng = np.random.default_rng(n1)
    x = rng.standard_normal((n1, d)) @ rng.standard_normal((d, d)) * 0.3
    y = rng.standard_normal((n2, d)) + 0.5
    sqrtm_form = kernels.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert kernels.frechet_distance_features(x, y) == pytest.approx(sqrtm_form, rel=1e-7)
    # and the trace term is the nuclear norm of the centred cross products
    assert np.trace(scipy.linalg.sqrtm(np.cov(x, rowvar=False) @ np.cov(y, rowvar=False))).real == pytest.approx(
        np.linalg.svd((x - x.mean(0)) @ (y - y.mean(0)).T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1)),
        rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_between_two():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))
    same = kernels.kid(x, y, subsets=20, subset_size=100)
    shifted = kernels.kid(x, y + 1.0, subsets=20, subset_size=100)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 10 * same.std
    assert (same.subsets, same.subset_size) == (20, 100)
    assert kernels.kid(x[:50], y, subset_size=1000).subset_size == 50  # capped at the smaller set, recorded


def test_block_bootstrap_keeps_runs_of_consecutive_frames():
    rng = np.random.default_rng(1)
    indices = kernels.block_bootstrap_indices(100, 5, rng)
    assert len(indices) == 100 and indices.min() >= 0 and indices.max() < 100
    assert np.all(np.diff(indices.reshape(20, 5), axis=1) == 1)
