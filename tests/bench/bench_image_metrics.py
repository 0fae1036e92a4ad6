"""Timing: L2 + PSNR + SSIM over 64 frames of 512x512, batched torch against a per-frame scikit-image loop.

Run: ``pytest tests/bench/bench_image_metrics.py --benchmark-only``. Both sides compute the same
numbers (checked here at 1e-5), so the ratio of the two timings is the speed-up at equal values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

import metrics

FRAMES, SIZE, BATCH = 64, 512, 16


@pytest.fixture(scope="module")
def frames():
    from skimage import data
    from skimage.transform import resize

    photo = resize(data.astronaut(), (SIZE, SIZE), anti_aliasing=True).astype(np.float32)
    rng = np.random.default_rng(0)
    gt = np.stack([np.roll(photo, shift=i, axis=1) for i in range(FRAMES)])
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape).astype(np.float32), 0, 1)
    return pred, gt


def torch_metrics(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(pred), BATCH):
            p = torch.from_numpy(pred[start : start + BATCH]).permute(0, 3, 1, 2)
            g = torch.from_numpy(gt[start : start + BATCH]).permute(0, 3, 1, 2)
            mse = metrics.l2(p, g)
            out.append(torch.stack([mse, metrics.image.psnr_from_mse(mse), metrics.ssim(p, g)], 1))
    return torch.cat(out).double().numpy()


def skimage_metrics(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    rows = []
    for p, g in zip(pred, gt):
        rows.append([
            mean_squared_error(g, p),
            peak_signal_noise_ratio(g, p, data_range=1),
            structural_similarity(g, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
                                  channel_axis=-1),
        ])
    return np.array(rows)


def test_values_equal(frames):
    pred, gt = frames
    np.testing.assert_allclose(torch_metrics(pred[:4], gt[:4]), skimage_metrics(pred[:4], gt[:4]), atol=1e-5, rtol=0)


def test_bench_torch_batched(benchmark, frames):
    benchmark.group = "l2+psnr+ssim 64x512x512"
    benchmark.pedantic(torch_metrics, args=frames, rounds=3, iterations=1, warmup_rounds=1)


def test_bench_skimage_loop(benchmark, frames):
    benchmark.group = "l2+psnr+ssim 64x512x512"
    benchmark.pedantic(skimage_metrics, args=frames, rounds=3, iterations=1)
