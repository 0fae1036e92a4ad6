"""`cabench time`: CSV layout, plot, bad arguments; the sd15 / CUDA path runs only with a GPU."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.cli import main


def test_time_tiny_writes_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "t"
    code = main(["time", "--config", "tiny", "--steps", "1,2", "--scheduler", "lcm,ddim", "--repeats", "2",
                 "--warmup", "0", "--out", str(out), "--quiet"])
    assert code == 0
    frame = pd.read_csv(out / "times.csv")
    assert len(frame) == 2 * 2 * 2
    assert set(frame.columns) >= {"scheduler", "steps", "repeat", "tsd", "tsdm", "unet_controlnet_step",
                                  "vae_decode", "refiner", "total"}
    assert (frame["total"] > 0).all() and (frame["refiner"] == 0).all()
    parts = frame["tsd"] + frame["tsdm"] + frame["conditions"] + frame["vae_decode"] + \
        frame["unet_controlnet_step"] * frame["steps"]
    assert (abs(parts - frame["total"]) < 1e-6).all()
    assert (out / "times.png").stat().st_size > 1000
    assert "median ms per frame" in capsys.readouterr().out


def test_time_compare_stock_pipeline(tmp_path):
    out = tmp_path / "s"
    assert main(["time", "--config", "tiny", "--steps", "2", "--repeats", "1", "--warmup", "0", "--compare-stock",
                 "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "times.csv")
    assert (frame["stock_controlnet"] > 0).all() and (frame["ours_controlnet"] > 0).all()


def test_stock_pipeline_shares_the_weights():
    from reference.timing import stock_controlnet_pipeline, timing_pipeline

    pipe = timing_pipeline("tiny")
    stock = stock_controlnet_pipeline(pipe)
    assert stock.controlnet is pipe.controlnet and stock.vae is pipe.vae
    assert torch.equal(stock.unet.conv_in.weight, pipe.unet.conv_in.weight)
    # with the condition branch silent (W'_v = 0 at init) both UNets compute the same eps
    x, t, ctx = torch.randn(1, 4, 16, 16), torch.tensor([100]), pipe.text_context(1)
    ours = pipe.unet(x, t, ctx, cross_attention_kwargs={"condition_tokens": torch.randn(1, 4, 32)}).sample
    torch.testing.assert_close(stock.unet(x, t, ctx).sample, ours)


@pytest.mark.parametrize("argv,message", [
    (["--steps", "0"], "--steps"),
    (["--scheduler", "euler"], "unknown scheduler"),
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
def test_time_sd15_on_cuda_fp16(tmp_path):
    out = tmp_path / "t"
    assert main(["time", "--config", "sd15", "--device", "cuda", "--dtype", "fp16", "--channels-last",
                 "--steps", "4", "--repeats", "3", "--compare-stock", "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "times.csv")
    assert len(frame) == 3 and (frame["total"] > 0).all() and (frame["stock_controlnet"] > 0).all()
