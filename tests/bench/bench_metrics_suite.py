"""Timing: the whole offline metric suite through ``benchmark.evaluate``, in frames per second on CPU.

Run: ``pytest tests/bench/bench_metrics_suite.py --benchmark-only``. The video is 16 frames of
512x512 (the astronaut photo panning, one face). "offline" = every metric that needs no downloaded
weights: image metrics, DIS-flow temporal metrics, dlib landmark and identity metrics. The
"+lpips" run adds LPIPS and tLP with an AlexNet trunk of random weights (same cost as the real one).
Frames/second = FRAMES / mean time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.evaluation import evaluate

FRAMES, SIZE = 16, 512
OFFLINE = ["l1", "l2", "psnr", "ssim", "flow_gap", "tof", "warp_error", "motion_inheritance",
           "lmk_pose", "lmk_expr", "lmd", "mlmd", "csim"]


@pytest.fixture(scope="module")
def videos():
    from skimage import data

    photo = data.astronaut()
    gt = np.stack([np.roll(photo, shift=(i // 2, i), axis=(0, 1)) for i in range(FRAMES)])
    rng = np.random.default_rng(0)
    pred = np.clip(gt.astype(np.int16) + rng.integers(-6, 7, gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


def run_suite(pred, gt, names):
    return evaluate(pred=pred, gt=gt, metrics=names, progress=False, batch_size=8)


def test_bench_offline_suite(benchmark, videos):
    benchmark.group = f"metric suite {FRAMES} frames {SIZE}x{SIZE} CPU"
    result = benchmark.pedantic(run_suite, args=(*videos, OFFLINE), rounds=2, iterations=1)
    assert not result.missing
    assert np.isfinite(result.frames["csim"]).all() and np.isfinite(result.frames["tof"].iloc[1:]).all()


def test_bench_offline_suite_with_lpips(benchmark, videos, tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("CABENCH_WEIGHTS", str(tmp_path))
    benchmark.group = f"metric suite {FRAMES} frames {SIZE}x{SIZE} CPU"
    names = [*OFFLINE, "lpips", "tlp"]
    result = benchmark.pedantic(run_suite, args=(*videos, names), rounds=2, iterations=1)
    assert not result.missing
