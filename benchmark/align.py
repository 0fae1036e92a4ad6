"""Align a method's output to its ground truth by frame id.

Convention: by default nothing is silently fixed. A missing or extra frame, or a size mismatch,
is an :class:`InputError` that names the frames (or the two sizes). The user may ask for explicit
policies, which are recorded with the results:
- ``intersect``: evaluate only the frame ids both sides have;
- ``resize``: resize the prediction to the ground truth's size (area interpolation when
  shrinking, bilinear when enlarging; OpenCV).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from benchmark.io import Frames, FrameSource, _short_list
from metrics.errors import InputError

POLICIES = ("intersect", "resize")
# The same engine serves `cabench eval` (flags) and `cabench run` (config keys): hints name both.
RESIZE_HINT = "to resize the prediction, use --align resize (cabench eval) or align = [\"resize\"] in [run] (cabench run)"
INTERSECT_HINT = ("to evaluate the common frames, use --align intersect (cabench eval) or align = [\"intersect\"] "
                  "in [run] (cabench run)")


def parse_policy(policy: str | Iterable[str] | None) -> frozenset[str]:
    """Accept None, ``"intersect"``, ``"intersect,resize"`` or an iterable of policy names."""
    if policy is None:
        return frozenset()
    names = [p.strip() for p in policy.split(",")] if isinstance(policy, str) else list(policy)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise InputError(f"--align: unknown policy {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    return frozenset(names)


def resize_frames(frames: Frames, size: tuple[int, int]) -> Frames:
    """Resize RGB (and alpha, and the stored colour) to ``size`` (H,W)."""
    import cv2

    height, width = size
    shrinking = frames.rgb.shape[1] * frames.rgb.shape[2] > height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR

    def resized(stack: np.ndarray | None) -> np.ndarray | None:
        if stack is None:
            return None
        return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in stack])

    return Frames(frames.ids, resized(frames.rgb), resized(frames.alpha), resized(frames.colour))


@dataclass
class AlignedPair:
    """A prediction and its ground truth over common frame ids, read together in batches."""

    pred: FrameSource
    gt: FrameSource
    frame_ids: list[int]
    resize: bool
    policy: frozenset[str]

    def batches(self, batch_size: int) -> Iterator[tuple[Frames, Frames]]:
        for start in range(0, len(self.frame_ids), batch_size):
            ids = self.frame_ids[start : start + batch_size]
            pred, gt = self.pred.read(ids), self.gt.read(ids)
            if self.resize and pred.rgb.shape[1:3] != gt.rgb.shape[1:3]:
                pred = resize_frames(pred, gt.rgb.shape[1:3])
            if pred.rgb.shape != gt.rgb.shape:
                raise InputError(
                    f"{self.pred.name}: frames {_short_list(ids)} are {pred.rgb.shape[2]}x{pred.rgb.shape[1]}, "
                    f"ground truth {self.gt.name} is {gt.rgb.shape[2]}x{gt.rgb.shape[1]}; {RESIZE_HINT}"
                )
            yield pred, gt


def refuse_extra(pred: FrameSource, gt: FrameSource, policy: str | Iterable[str] | None = None) -> None:
    """Refuse prediction frames whose ids the ground truth (all its frames, any split) lacks, unless
    ``policy`` has ``intersect``. A run evaluates a split of the ground truth, so a prediction is read
    only at the split's ids; a frame the ground truth does not have at all would otherwise be dropped
    without a word (``00012.png`` beside a 12-frame ground truth: a misnumbered or shifted output)."""
    if "intersect" in parse_policy(policy):
        return
    extra = sorted(set(pred.frame_ids) - set(gt.frame_ids))
    if extra:
        raise InputError(f"{pred.name}: extra frames {_short_list(extra)} against ground truth {gt.name} "
                         f"(which has no such frame ids); {INTERSECT_HINT}")


def align(pred: FrameSource, gt: FrameSource, policy: str | Iterable[str] | None = None) -> AlignedPair:
    """Pair ``pred`` with ``gt`` by frame id under ``policy`` (see the module docstring)."""
    policies = parse_policy(policy)
    gt_ids, pred_ids = set(gt.frame_ids), set(pred.frame_ids)
    missing = sorted(gt_ids - pred_ids)
    extra = sorted(pred_ids - gt_ids)
    if (missing or extra) and "intersect" not in policies:
        parts = []
        if missing:
            parts.append(f"missing frames {_short_list(missing)}")
        if extra:
            parts.append(f"extra frames {_short_list(extra)}")
        raise InputError(
            f"{pred.name}: {' and '.join(parts)} against ground truth {gt.name}; {INTERSECT_HINT}"
        )
    ids = [i for i in gt.frame_ids if i in pred_ids]
    if not ids:
        raise InputError(f"{pred.name}: no frame id in common with ground truth {gt.name}")
    if pred.size != gt.size and "resize" not in policies:
        raise InputError(
            f"{pred.name}: frame size {pred.size[1]}x{pred.size[0]} differs from ground truth {gt.name} "
            f"({gt.size[1]}x{gt.size[0]}); {RESIZE_HINT}"
        )
    return AlignedPair(pred, gt, ids, resize="resize" in policies, policy=policies)
