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


@pytest.mark.parametrize("argv,message", [
    (["--steps", "0"], "--steps"),
    (["--scheduler", "euler"], "unknown scheduler"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--dtype", "fp8"], "CUDA is not available"),
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
                 "--steps", "4", "--repeats", "3", "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "times.csv")
    assert len(frame) == 3 and (frame["total"] > 0).all()
