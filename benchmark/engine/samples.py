"""Sample strips for the report: a few frames of each method beside the ground truth's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.io import Frames, FrameSource
from benchmark.results.files import atomic_write_bytes

SAMPLE_FRAMES, SAMPLE_HEIGHT = 4, 112


def sample_ids(ids: Sequence[int], count: int = SAMPLE_FRAMES) -> list[int]:
    """``count`` frame ids spread evenly over ``ids`` (first and last included)."""
    if len(ids) <= count:
        return list(ids)
    return [ids[round(i * (len(ids) - 1) / (count - 1))] for i in range(count)]


def strip(frames: Frames, height: int = SAMPLE_HEIGHT) -> np.ndarray:
    """The frames side by side, each resized to ``height`` rows (uint8 RGB)."""
    import cv2

    tiles = [cv2.resize(f, (max(1, round(f.shape[1] * height / f.shape[0])), height), interpolation=cv2.INTER_AREA)
             for f in frames.rgb]
    return np.concatenate(tiles, axis=1)


def write_samples(pred: FrameSource, gt: FrameSource, ids: Sequence[int], method_png: Path, gt_png: Path) -> None:
    """Sample strips of the method (``method_png``) and of the ground truth (``gt_png``)."""
    import cv2

    chosen = [i for i in sample_ids(ids) if i in set(pred.frame_ids)]
    if not chosen:
        return
    for source, path in ((pred, method_png), (gt, gt_png)):
        ok, data = cv2.imencode(".png", cv2.cvtColor(strip(source.read(chosen)), cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write_bytes(path, data.tobytes())
