"""`cabench time`: CSV in milliseconds with its metadata, printed spread, thread policy, load warning, the
comparison with diffusers' stock pipelines (equal frames, shared modules); sd15 / CUDA only with a GPU."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.cli import main

TIME_32 = ["time", "--config", "tiny", "--size", "32"]  # the same timing path at a quarter of the pixels


def test_time_tiny_writes_milliseconds_with_threads_device_and_spread(tmp_path, capsys):
    out = tmp_path / "t"
    threads_before = torch.get_num_threads()
    code = main([*TIME_32, "--steps", "1,2", "--scheduler", "lcm,ddim", "--repeats", "2",
                 "--warmup", "0", "--batch", "2", "--out", str(out), "--quiet"])
    assert code == 0
    frame = pd.read_csv(out / "times.csv")
    assert len(frame) == 2 * 2 * 2
    stages = ["constants_ms", "tsd_ms", "tsdm_ms", "conditions_ms", "fcsd_ms", "vae_decode_ms", "refiner_ms"]
    assert set(frame.columns) >= {"scheduler", "steps", "repeat", "batch", "size", "device", "dtype", "threads",
                                  "load_avg", "fcsd_step_ms", "total_ms", *stages}
    assert (frame["total_ms"] > 0).all() and (frame["refiner_ms"] == 0).all()
    assert (abs(frame[stages].sum(axis=1) - frame["total_ms"]) < 1e-6).all()
    assert (abs(frame["fcsd_step_ms"] * frame["steps"] - frame["fcsd_ms"]) < 1e-6).all()
    assert (frame["threads"] == 1).all() and (frame["device"] == "cpu").all() and (frame["size"] == 32).all()
    assert torch.get_num_threads() == threads_before  # the thread policy applies to the timing only
    assert (out / "timing_steps.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "device cpu, 1 thread(s)" in printed and "milliseconds per frame" in printed
    assert "total min" in printed and "total median" in printed and "total max" in printed
    assert main([*TIME_32, "--steps", "1", "--repeats", "1", "--warmup", "0", "--batch", "1",
                 "--threads", "2", "--out", str(out), "--quiet"]) == 0
    assert (pd.read_csv(out / "times.csv")["threads"] == 2).all()


def test_time_warns_when_the_machine_is_busy(tmp_path, capsys, monkeypatch):
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() or 1) + 4.0, 0.0, 0.0))
    assert main([*TIME_32, "--steps", "1", "--repeats", "1", "--warmup", "0", "--batch", "1",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert "unreliable" in capsys.readouterr().out

    from reference.timing import load_warning

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert load_warning(1) is None


def test_time_compare_stock_reports_both_rows_and_the_speedup(tmp_path, capsys):
    out = tmp_path / "s"
    assert main([*TIME_32, "--steps", "2", "--repeats", "1", "--warmup", "0", "--batch", "2",
                 "--compare-stock", "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "times.csv")
    for column in ("stock_total_ms", "stock_batch_total_ms", "ours_fcsd_ms", "stock_fcsd_ms", "stock_batch_fcsd_ms"):
        assert (frame[column] > 0).all()
    printed = capsys.readouterr().out
    assert "whole pipeline" in printed and "FCSD + decode" in printed and "speedup" in printed
    assert "per frame" in printed and "same batch" in printed


@pytest.mark.parametrize("scheduler,steps", [("lcm", 2), ("ddim", 3)])
def test_stock_pipelines_render_our_frames(scheduler, steps):
    """diffusers' StableDiffusionPipeline (TSDM) and StableDiffusionControlNetPipeline (FCSD), frame by frame
    and given the whole batch in one call, with the same per-frame generators, give the frames of our
    batched call, which equal those the timed stage-by-stage path gives."""
    from reference.timing import (
        fcsd_subset,
        frame_generators,
        render_stock,
        render_timed,
        stock_pipelines,
        timing_inputs,
        timing_pipeline,
    )

    pipe = timing_pipeline("tiny", checkpoint="tiny")
    inputs = timing_inputs(2, 32)  # two frames: per frame and batched still differ
    _, ours = render_timed(pipe, inputs, scheduler, steps)
    pipe.set_scheduler(scheduler)
    called = pipe(inputs["rgb"], inputs["normal"], inputs["pose"], inputs["expression"], num_inference_steps=steps,
                  generator=frame_generators(2)).images
    assert torch.equal(ours, called)
    stock = stock_pipelines(pipe)
    assert stock[1].unet is pipe.unet and stock[1].controlnet is pipe.controlnet and stock[0].unet is pipe.tsdm_unet
    theirs = render_stock(pipe, stock, inputs, scheduler, steps)
    assert float(ours.std()) > 0.02
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)
    torch.testing.assert_close(render_stock(pipe, stock, inputs, scheduler, steps, batched=True), ours, atol=1e-4,
                               rtol=0)
    control, f_d = torch.rand(2, 6, 32, 32), torch.randn(2, 4, 32)
    _, ours_fcsd, stock_fcsd, stock_batch_fcsd = fcsd_subset(pipe, stock, control, f_d, scheduler, steps)
    torch.testing.assert_close(stock_fcsd, ours_fcsd, atol=1e-4, rtol=0)
    torch.testing.assert_close(stock_batch_fcsd, ours_fcsd, atol=1e-4, rtol=0)


def test_channels_last_and_compile_change_both_sides(monkeypatch):
    from reference.timing import stock_pipelines, timing_pipeline

    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    pipe = timing_pipeline("tiny", channels_last=True, compile=True)
    stock_tsdm, stock_fcsd = stock_pipelines(pipe)
    assert {id(m) for m in compiled} == {id(pipe.unet), id(pipe.controlnet), id(pipe.tsdm_unet), id(pipe.vae.decoder)}
    assert stock_fcsd.unet is pipe.unet and stock_fcsd.controlnet is pipe.controlnet and stock_tsdm.vae is pipe.vae
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("argv,message", [
    (["--steps", "0"], "--steps"),
    (["--scheduler", "warp"], "unknown scheduler"),
    (["--threads", "0"], "--threads"),
    (["--device", "cuda"], "no CUDA device is available") if not torch.cuda.is_available() else (["--dtype", "fp8"], "fp8"),
    (["--device", "mps"], "not a device this harness runs on"),
])
def test_time_bad_arguments(tmp_path, capsys, argv, message):
    try:
        code = main(["time", "--config", "tiny", "--out", str(tmp_path), "--quiet", *argv])
    except SystemExit as exit_:  # argparse rejects --steps values itself
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_time_sd15_on_cuda_fp16(tmp_path):
    out = tmp_path / "t"
    assert main(["time", "--config", "sd15", "--device", "cuda", "--dtype", "fp16", "--channels-last",
                 "--steps", "4", "--repeats", "3", "--batch", "1", "--compare-stock", "--out", str(out),
                 "--quiet"]) == 0
    frame = pd.read_csv(out / "times.csv")
    assert len(frame) == 3 and (frame["total_ms"] > 0).all() and (frame["stock_total_ms"] > 0).all()
