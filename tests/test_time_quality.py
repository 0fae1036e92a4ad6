"""`cabench time --quality` and `--lcm-lora`: the sweep renders what the consistentavatar adapter renders
(its per-frame PSNR recomputed independently), the LCM-LoRA switch changes LCM's frames and no other
sampler's, one sweep row per (scheduler, lora, steps), and the error cases exit 2 with one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from benchmark.cli import main
from benchmark.datasets import open_dataset
from benchmark.datasets.synthetic import write_sequence
from benchmark.io import open_frames
from reference.render import TINY_CHECKPOINT as SHIPPED_TINY
from reference.render import render_sequence

SWEEP = ["time", "--checkpoint", str(SHIPPED_TINY), "--size", "32", "--repeats", "1", "--warmup", "0", "--batch", "2",
         "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two 8-frame synthetic sequences (2 held-out test frames each) at 64 px."""
    root = tmp_path_factory.mktemp("sweepdata")
    for seed in (0, 1):
        write_sequence(root, frames=8, size=64, seed=seed, name=f"talk{seed}", progress=False, motion_version="v2")
    return root


def _direct(sequence, scheduler: str, steps: int, lcm_lora: bool) -> tuple[np.ndarray, np.ndarray]:
    """(rendered uint8 frames, ground truth composited on white as float in [0, 1]) of the test split, from the
    files and render_sequence directly."""
    ids = sequence.split_ids("test")
    stage1 = sequence.root / "stage1"
    rgb = open_frames(stage1 / "rgb").read(ids).rgb
    normal = open_frames(stage1 / "normal").read(ids).rgb
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count cabench time renders with on a CPU: it sets float summation order
    try:
        rendered = render_sequence(str(SHIPPED_TINY), rgb, normal, sequence.annotation("pose", ids),
                                   sequence.annotation("expression", ids), scheduler=scheduler, steps=steps, seed=0,
                                   device="cpu", batch_size=2, lcm_lora=lcm_lora)
    finally:
        torch.set_num_threads(previous)
    truth = sequence.frames.read(ids)  # RGBA: the protocol composites on white in float, without uint8 rounding
    alpha = truth.alpha.astype(np.float64)[..., None]
    return rendered, truth.colour.astype(np.float64) / 255 * alpha + (1 - alpha)


def test_sweep_scores_what_the_adapter_renders(data, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main([*SWEEP, "--scheduler", "lcm,ddim", "--steps", "1,2", "--lcm-lora", "both", "--quality", str(data),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lcm (LoRA off)" in printed and "PSNR dB [95% CI]" in printed

    quality = pd.read_csv(out / "quality.csv")
    assert list(quality.columns) == ["scheduler", "lora", "steps", "sequence", "frame", "psnr", "ssim"]
    assert len(quality) == 3 * 2 * 2 * 2  # (lcm on, lcm off, ddim) x 2 step counts x 2 sequences x 2 frames
    sweep = pd.read_csv(out / "sweep.csv")
    keys = list(zip(sweep["scheduler"], sweep["lora"], sweep["steps"]))
    assert sorted(keys) == sorted({(s, lora, n) for s, lora in (("lcm", "on"), ("lcm", "off"), ("ddim", "off"))
                                   for n in (1, 2)})
    assert sweep["total_ms"].gt(0).all() and sweep["frames"].eq(4).all()
    assert (sweep["psnr_low"] <= sweep["psnr"]).all() and (sweep["psnr"] <= sweep["psnr_high"]).all()
    paired = sweep["reference"].fillna("").astype(str) != ""
    assert list(sweep.loc[paired, "label"]) == ["lcm", "lcm"] and sweep.loc[paired, "psnr_diff"].notna().all()
    assert sweep.loc[~paired, "psnr_diff"].isna().all()
    for name in ("sweep.md", "sweep.png", "times.csv", "timing_steps.png"):
        assert (out / name).stat().st_size > 100, name

    sequence = open_dataset(data / "talk1").sequences[0]
    frames = {}
    for scheduler, lora in (("lcm", "on"), ("lcm", "off"), ("ddim", "off"), ("ddim", "on")):
        rendered, truth = _direct(sequence, scheduler, 2, lcm_lora=lora == "on")
        frames[(scheduler, lora)] = rendered
        if scheduler == "ddim" and lora == "on":
            continue  # not a sweep row: DDIM never uses the LoRA (checked below)
        rows = quality[(quality["scheduler"] == scheduler) & (quality["lora"] == lora) & (quality["steps"] == 2)
                       & (quality["sequence"] == "talk1")].sort_values("frame")
        expected = [peak_signal_noise_ratio(t, r / 255.0, data_range=1) for t, r in zip(truth, rendered)]
        np.testing.assert_allclose(rows["psnr"], expected, atol=1e-4)  # float32 MSE of 64 x 64 x 3 values
    assert not np.array_equal(frames[("lcm", "on")], frames[("lcm", "off")])  # the LoRA samples under LCM only
    np.testing.assert_array_equal(frames[("ddim", "on")], frames[("ddim", "off")])


@pytest.mark.parametrize("argv,needle", [
    (["time", "--quality", "{data}", "--quiet"], "--quality needs --checkpoint"),
    ([*SWEEP, "--quality", "{missing}"], "{missing}"),
    ([*SWEEP, "--quality", "{empty}"], "{empty}"),
    ([*SWEEP, "--scheduler", "ddim", "--lcm-lora", "both"], "--lcm-lora"),
])
def test_sweep_errors_exit_2_with_one_line_before_the_pipeline(data, tmp_path, capsys, monkeypatch, argv, needle):
    import reference.timing

    def no_pipeline(*args, **kwargs):
        raise AssertionError("the pipeline was built before the inputs were checked")

    monkeypatch.setattr(reference.timing, "timing_pipeline", no_pipeline)
    (tmp_path / "empty").mkdir()
    paths = {"data": str(data), "missing": str(tmp_path / "missing"), "empty": str(tmp_path / "empty")}
    argv = [a.format(**paths) for a in argv]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle.format(**paths) in lines[0], lines


def test_lcm_lora_off_needs_a_checkpoint_with_one(tmp_path, capsys):
    assert main(["time", "--config", "tiny", "--size", "32", "--steps", "1", "--lcm-lora", "off", "--quiet",
                 "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no LCM-LoRA" in lines[0]
