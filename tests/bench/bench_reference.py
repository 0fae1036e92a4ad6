"""Speed of the reference pipeline against diffusers' stock pipelines on the same weights and seeds.

Run: ``pytest tests/bench/bench_reference.py --benchmark-only``. Each group holds ours (a batch of 8
frames through the pipeline) and stock (diffusers' pipelines called once per frame, as
reference/timing.py describes); pytest-benchmark prints each row's time relative to the group's
fastest, which is the speed-up. The frames of both sides are checked equal (float tolerance).

Groups: the whole pipeline (TSD + TSDM + FCSD + decode) and the FCSD subset (FCSD steps + decode on
the same conditions), at 4 LCM steps, for ``tiny`` (64 px) and ``sd15`` at 64 px (random SD 1.5
weights, about 6 GB of memory; marked ``slow``). The CUDA row (sd15, 512 px, fp16, 4 LCM steps) runs
only with a GPU.
"""

from __future__ import annotations

import pytest
import torch

from reference.timing import (
    frame_generators,
    ours_fcsd,
    render_stock,
    render_timed,
    stock_fcsd,
    stock_pipelines,
    time_once,
    timing_inputs,
    timing_pipeline,
)

FRAMES, STEPS, SIZE = 8, 4, 64
CONFIGS = ["tiny", pytest.param("sd15", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=CONFIGS)
def setup(request):
    pipe = timing_pipeline(request.param)
    stock = stock_pipelines(pipe)
    inputs = timing_inputs(FRAMES, SIZE)
    g = torch.Generator().manual_seed(1)
    control = torch.rand(FRAMES, 6, SIZE, SIZE, generator=g)
    f_d = torch.randn(FRAMES, pipe.fcsd_encoder.num_tokens, pipe.unet.config.condition_dim, generator=g)
    _, ours = render_timed(pipe, inputs, "lcm", STEPS)
    torch.testing.assert_close(render_stock(pipe, stock, inputs, "lcm", STEPS), ours, atol=1e-3, rtol=0)
    return request.param, pipe, stock, inputs, control, f_d


def _ours_whole(pipe, inputs):
    pipe.set_scheduler("lcm")
    return pipe(inputs["rgb"], inputs["normal"], inputs["pose"], inputs["expression"], num_inference_steps=STEPS,
                generator=frame_generators(FRAMES)).images


def test_bench_whole_ours(benchmark, setup):
    config, pipe, _, inputs, _, _ = setup
    benchmark.group = f"{config}: whole pipeline, {FRAMES} frames, LCM {STEPS}"
    benchmark.pedantic(_ours_whole, args=(pipe, inputs), rounds=3, warmup_rounds=1)


def test_bench_whole_stock(benchmark, setup):
    config, pipe, stock, inputs, _, _ = setup
    benchmark.group = f"{config}: whole pipeline, {FRAMES} frames, LCM {STEPS}"
    benchmark.pedantic(render_stock, args=(pipe, stock, inputs, "lcm", STEPS), rounds=3, warmup_rounds=1)


def test_bench_fcsd_ours(benchmark, setup):
    config, pipe, stock, _, control, f_d = setup
    benchmark.group = f"{config}: FCSD + decode, {FRAMES} frames, LCM {STEPS}"
    ours = benchmark.pedantic(ours_fcsd, args=(pipe, control, f_d, "lcm", STEPS), rounds=3, warmup_rounds=1)
    torch.testing.assert_close(stock_fcsd(pipe, stock, control, f_d, "lcm", STEPS), ours, atol=1e-3, rtol=0)


def test_bench_fcsd_stock(benchmark, setup):
    config, pipe, stock, _, control, f_d = setup
    benchmark.group = f"{config}: FCSD + decode, {FRAMES} frames, LCM {STEPS}"
    benchmark.pedantic(stock_fcsd, args=(pipe, stock, control, f_d, "lcm", STEPS), rounds=3, warmup_rounds=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bench_sd15_frame_lcm4_fp16_cuda(benchmark):
    pipe = timing_pipeline("sd15", device="cuda", dtype="fp16", channels_last=True)
    time_once(pipe, "lcm", 4, 1)  # warm-up
    result = benchmark.pedantic(time_once, args=(pipe, "lcm", 4, 1), rounds=10, warmup_rounds=1)
    assert result["total_ms"] > 0
