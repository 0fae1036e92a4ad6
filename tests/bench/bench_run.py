"""Timing: a realistic run through the runner, in method-frames per second on CPU.

Run: ``pytest tests/bench/bench_run.py --benchmark-only``. The configuration: 2 synthetic sequences
(``cabench synth`` seeds 0 and 1) x 64 frames at 512x512, every frame evaluated (split ``all``),
8 methods: the five degradations of the ``degraded`` adapter and three stored-frame methods (the
stage-1 proxy's frames, and the ground truth JPEG-compressed at quality 10 and pixelated in 8x8
blocks, written once as PNG folders beside each sequence), with the full offline suite (every
metric that needs no downloaded weights). Method-frames/second = 2 x 64 x 8 / mean time; each
round starts from an empty run folder, so it includes the ground truth's work.

The data is made once under ``$CABENCH_BENCH_DATA`` (default: a temporary folder per session).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmark.config import DatasetConfig, MethodConfig, RunConfig

SEQUENCES, FRAMES, SIZE = 2, 64, 512
OFFLINE = ("l1", "l2", "psnr", "ssim", "flow_gap", "tof", "warp_error", "motion_inheritance",
           "lmk_pose", "lmk_expr", "lmd", "mlmd", "csim")
DEGRADATIONS = ("oversmooth", "flicker", "jitter", "expression_lag", "colour_drift")
STORED = {"stage-1 proxy": "stage1/rgb", "JPEG q10": "stored/jpeg10", "pixelated 8x8": "stored/pixelated8"}


def jpeg(rgb: np.ndarray, quality: int = 10) -> np.ndarray:
    """``rgb`` (H,W,3) uint8 through OpenCV's JPEG encoder at ``quality``."""
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def pixelate(rgb: np.ndarray, block: int = 8) -> np.ndarray:
    """``rgb`` averaged over ``block`` x ``block`` squares (area down-sampling, nearest up-sampling)."""
    import cv2

    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (width // block, height // block), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def make_data(root: Path) -> Path:
    """The synthetic sequences ``talk0`` and ``talk1`` and their stored-frame methods (kept if present)."""
    import cv2

    from benchmark.datasets import open_dataset
    from benchmark.datasets.synthetic import write_sequence

    for index in range(SEQUENCES):
        name = f"talk{index}"
        if not (root / name / "transforms.json").is_file():
            write_sequence(root, frames=FRAMES, size=SIZE, seed=index, name=name, progress=False)
    for sequence in open_dataset(root, kind="synthetic"):
        folder = Path(sequence.root)
        for method, damage in (("jpeg10", jpeg), ("pixelated8", pixelate)):
            out = folder / "stored" / method
            if out.is_dir() and len(list(out.glob("*.png"))) == FRAMES:
                continue
            out.mkdir(parents=True, exist_ok=True)
            ids = sequence.frames.frame_ids
            for frame, rgb in zip(ids, sequence.frames.read(ids).rgb):
                cv2.imwrite(str(out / f"{frame:05d}.png"), cv2.cvtColor(damage(rgb), cv2.COLOR_RGB2BGR))
    return root


def bench_config(data: Path, out: Path) -> RunConfig:
    methods = [MethodConfig(name=f"degraded: {d}", adapter="degraded", settings={"degradation": d}) for d in DEGRADATIONS]
    methods += [MethodConfig(name=name, frames=f"{{root}}/{folder}") for name, folder in STORED.items()]
    return RunConfig(datasets=(DatasetConfig(name="synthetic", path=str(data), kind="synthetic"),), methods=tuple(methods),
                     metrics=OFFLINE, out=str(out), protocol="canonical", device="cpu", split="all")


def run(config: RunConfig):
    """The one place the bench calls the engine: every pair computed, per-frame table returned."""
    from benchmark.runner import run_config
    from reports.publish import publish

    return run_config(config, force=True, progress=False, plots=False, report=False, log=lambda _: None,
                      publish=publish).per_frame


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = os.environ.get("CABENCH_BENCH_DATA")
    return make_data(Path(root) if root else tmp_path_factory.mktemp("bench_run_data"))


def test_bench_run(benchmark, data, tmp_path_factory):
    method_frames = SEQUENCES * FRAMES * len(DEGRADATIONS + tuple(STORED))
    benchmark.group = f"run {SEQUENCES} sequences x {FRAMES} frames {SIZE}x{SIZE} x 8 methods, offline suite"
    benchmark.extra_info["method_frames"] = method_frames

    def fresh_folder():
        return (bench_config(data, tmp_path_factory.mktemp("bench_run_out")),), {}

    per_frame = benchmark.pedantic(run, setup=fresh_folder, rounds=2, iterations=1)
    assert len(per_frame) == method_frames
    assert np.isfinite(per_frame["psnr"]).all()
    benchmark.extra_info["method_frames_per_s"] = method_frames / benchmark.stats.stats.mean
