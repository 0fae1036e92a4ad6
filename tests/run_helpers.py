"""Small runs for the engine's tests: a moving crop of a real photo as ground truth, methods as PNG folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

from benchmark.config import DatasetConfig, MethodConfig, RunConfig
from benchmark.io import write_frames

FRAMES = 8


def moving_crop(frames: int = FRAMES, size: int = 64) -> np.ndarray:
    """A slowly moving crop of scikit-image's astronaut photo, (frames, size, size, 3) uint8."""
    photo = data.astronaut()
    return np.stack([cv2.resize(photo[20 + 3 * i: 260 + 3 * i, 100 + 2 * i: 340 + 2 * i], (size, size),
                                interpolation=cv2.INTER_AREA) for i in range(frames)])


def write_videos(root: Path, frames: int = FRAMES, size: int = 64) -> dict:
    """Ground truth ``root/gt/seq`` and methods ``noisy`` and ``blurred`` (``root/<method>/seq``) as PNG folders."""
    gt = moving_crop(frames, size)
    noisy = np.clip(gt + np.random.default_rng(0).normal(0, 6, gt.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in gt])
    for name, array in (("gt", gt), ("noisy", noisy), ("blurred", blurred)):
        write_frames(root / name / "seq", array)
    return {"root": root, "gt": gt, "noisy": noisy, "blurred": blurred}


def config(videos: dict, out: Path, **changes) -> RunConfig:
    """A run of the two methods on the ground truth (an ad-hoc ``frames`` dataset named ``synthetic``)."""
    root = videos["root"]
    methods = tuple(MethodConfig(name=name, frames=str(root / name / "{sequence}")) for name in ("noisy", "blurred"))
    run = RunConfig(datasets=(DatasetConfig(name="synthetic", path=str(root / "gt" / "seq"), kind="frames"),), methods=methods,
                    metrics=("l2", "psnr", "ssim"), out=str(out), batch_size=4, split="all")
    return run.replace(**changes)


def sigint_as_keyboard_interrupt() -> None:
    """In the child: SIGINT back to its default before Python starts, which then makes it KeyboardInterrupt
    (a child of a shell's background job inherits SIGINT ignored, and Python leaves an ignored SIGINT alone)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
