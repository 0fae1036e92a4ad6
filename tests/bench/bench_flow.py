"""Timing: optical flow pairs per second on 512x512 frames (DIS and Farneback on CPU; RAFT on a GPU).

Run: ``pytest tests/bench/bench_flow.py --benchmark-only``. Pairs/second = BATCH / mean time.
RAFT runs with random weights (the time does not depend on their values) and only on CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.flow import FlowConfig, build_raft, estimate_flow, raft_flow

SIZE, BATCH = 512, 8


@pytest.fixture(scope="module")
def pairs():
    import cv2
    from skimage import data

    photo = cv2.resize(data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    frames = [np.roll(photo, shift=(i, 2 * i), axis=(0, 1)) for i in range(BATCH + 1)]
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    return video[:-1], video[1:]


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_bench_opencv_flow(benchmark, pairs, backend):
    benchmark.group = f"flow {BATCH} pairs {SIZE}x{SIZE}"
    flow = benchmark.pedantic(estimate_flow, args=(*pairs, FlowConfig(backend)), rounds=3, iterations=1)
    assert flow.shape == (BATCH, 2, SIZE, SIZE)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("variant", ["raft_small", "raft_large"])
def test_bench_raft_gpu(benchmark, pairs, variant):
    benchmark.group = f"flow {BATCH} pairs {SIZE}x{SIZE}"
    model = build_raft(variant).eval().cuda()
    src, dst = (p.cuda() for p in pairs)

    def run():
        flow = raft_flow(model, src, dst, 12)
        torch.cuda.synchronize()
        return flow

    run()  # warm-up (cuDNN autotuning, allocations)
    flow = benchmark.pedantic(run, rounds=3, iterations=1)
    assert flow.shape == (BATCH, 2, SIZE, SIZE)
