"""Speed of the reference pipeline: tiny config on CPU; sd15 at 512 px, 4 LCM steps, fp16 on CUDA.

Run: pytest benchmark/bench_reference.py --benchmark-only
"""

from __future__ import annotations

import pytest
import torch

from reference.timing import time_once, timing_pipeline
from reference.tsd import tsd


@pytest.fixture(scope="module")
def tiny():
    return timing_pipeline("tiny")


def test_bench_tsd_batch_of_16_at_256(benchmark):
    images = torch.rand(16, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    benchmark(tsd, images)


@pytest.mark.parametrize("steps", [1, 4])
def test_bench_tiny_frame_lcm(benchmark, tiny, steps):
    result = benchmark(time_once, tiny, "lcm", steps, 1)
    assert result["total"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bench_sd15_frame_lcm4_fp16_cuda(benchmark):
    pipe = timing_pipeline("sd15", device="cuda", dtype="fp16", channels_last=True)
    time_once(pipe, "lcm", 4, 1)  # warm-up
    result = benchmark.pedantic(time_once, args=(pipe, "lcm", 4, 1), rounds=10, warmup_rounds=1)
    assert result["total"] > 0
