"""Sample strips for the report: a few frames of each method beside the ground truth's.

The frames are spread evenly over the split's frame ids, the same ids for the ground truth and every
method of a sequence, so the strips line up column by column; each tile carries its frame id in a
band above it, and a frame a method lacks (``align = ["intersect"]``) is a grey tile saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.io import FrameSource
from benchmark.results.files import atomic_write_bytes

SAMPLE_FRAMES, SAMPLE_HEIGHT, LABEL_HEIGHT = 4, 112, 16


def sample_ids(ids: Sequence[int], count: int = SAMPLE_FRAMES) -> list[int]:
    """``count`` frame ids spread evenly over ``ids`` (first and last included)."""
    if len(ids) <= count:
        return list(ids)
    return [ids[round(i * (len(ids) - 1) / (count - 1))] for i in range(count)]


def labelled_tile(frame: np.ndarray | None, label: str, width: int, height: int = SAMPLE_HEIGHT) -> np.ndarray:
    """``frame`` resized to ``height`` rows (``width`` columns) under a white band holding ``label``;
    ``None`` gives a grey tile saying the frame is absent (uint8 RGB)."""
    import cv2

    if frame is None:
        image = np.full((height, width, 3), 200, np.uint8)
        cv2.putText(image, "no frame", (4, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    else:
        image = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    band = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(band, label, (3, LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def strip(source: FrameSource, ids: Sequence[int], width: int, height: int = SAMPLE_HEIGHT) -> np.ndarray:
    """Frames ``ids`` of ``source`` side by side, each ``width`` x ``height`` and labelled with its id
    (absent ones grey)."""
    present = [i for i in ids if i in set(source.frame_ids)]
    frames = dict(zip(present, source.read(present).rgb)) if present else {}
    tiles = [labelled_tile(frames.get(i), f"frame {i}", width, height) for i in ids]
    separator = np.full((height + LABEL_HEIGHT, 2, 3), 255, np.uint8)
    out = [tiles[0]]
    for tile in tiles[1:]:
        out += [separator, tile]
    return np.concatenate(out, axis=1)


def write_samples(pred: FrameSource, gt: FrameSource, ids: Sequence[int], method_png: Path, gt_png: Path) -> None:
    """Sample strips of the method (``method_png``) and of the ground truth (``gt_png``) over the same
    frame ids, chosen from ``ids`` (the split's)."""
    import cv2

    chosen = sample_ids(list(ids))
    if not chosen or not pred.frame_ids:
        return
    height, width = gt.size
    width = max(1, round(width * SAMPLE_HEIGHT / height))  # the ground truth's aspect, so strips line up
    for source, path in ((pred, method_png), (gt, gt_png)):
        ok, data = cv2.imencode(".png", cv2.cvtColor(strip(source, chosen, width), cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write_bytes(path, data.tobytes())
