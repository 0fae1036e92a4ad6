"""Reading a method's stored outputs and lining them up with the ground truth.

- :func:`numbered_files`: the files of a folder named by a pattern (``"{id:05d}.png"``,
  ``"{index}_exp.png"``), for a list of keys; a missing file is an error naming it, and (with
  ``exact``) files the pattern matches beyond those keys are an error too (a wrong frame count).
- :class:`ResizedFrames`: outputs resized to the ground truth's size under an explicit policy
  (``RESIZE_POLICIES``), used only when a setting asks for it and recorded by the adapter.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.io import Frames, FrameSource, list_folder
from benchmark.stamps import text_stamp
from metrics.errors import CabenchError, InputError

RESIZE_POLICIES = ("none", "area", "bilinear", "bicubic", "lanczos")


def pattern_regex(pattern: str) -> re.Pattern:
    """A regex matching the file names ``pattern`` produces for any integer fields."""
    parts = []
    for literal, field, _spec, _conv in string.Formatter().parse(pattern):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(r"(\d+)")
    return re.compile("".join(parts) + r"\Z")


def numbered_files(folder: Path, pattern: str, keys: Sequence[int], field: str, what: str,
                   exact: bool = True) -> list[Path]:
    """``folder / pattern.format(**{field: key})`` for every key; see the module docstring."""
    if not folder.is_dir():
        raise InputError(f"{what}: output folder {folder} not found")
    try:
        paths = [folder / pattern.format(**{field: k}) for k in keys]
    except (KeyError, IndexError, ValueError) as error:
        raise CabenchError(f"{what}: pattern {pattern!r} must use the field {{{field}}} ({error})") from None
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: {what} output not found ({len(missing)} of {len(paths)} expected files missing)")
    if exact:
        regex = pattern_regex(pattern)
        found = sum(1 for p in list_folder(folder) if regex.match(p.name))
        if found != len(paths):
            raise InputError(f"{folder}: {found} files match {pattern!r}, expected {len(paths)} "
                             f"(one per frame of the evaluated split) for {what}")
    return paths


def check_resize_policy(policy: str, setting: str = "resize") -> str:
    if policy not in RESIZE_POLICIES:
        raise CabenchError(f"setting {setting} = {policy!r}: choose from {', '.join(RESIZE_POLICIES)}")
    return policy


def match_size(source: FrameSource, size: tuple[int, int], policy: str, what: str,
               record: dict) -> FrameSource:
    """``source`` at ``size`` (H, W): as is when equal, resized under ``policy`` otherwise."""
    if tuple(source.size) == tuple(size):
        record["resize"] = "none (sizes match)"
        return source
    if policy == "none":
        raise InputError(f"{what}: outputs are {source.size[1]}x{source.size[0]}, ground truth is {size[1]}x{size[0]}; "
                         f"set resize to one of {', '.join(RESIZE_POLICIES[1:])} to resize them explicitly")
    record["resize"] = f"{policy} {source.size[1]}x{source.size[0]} -> {size[1]}x{size[0]}"
    return ResizedFrames(source, size, policy)


class ResizedFrames(FrameSource):
    """Frames of ``source`` resized to ``size`` (H, W) with OpenCV interpolation ``policy``."""

    def __init__(self, source: FrameSource, size: tuple[int, int], policy: str):
        check_resize_policy(policy)
        self.source, self.policy = source, policy
        self.name = f"{source.name} (resized {policy})"
        self.frame_ids = source.frame_ids
        self.size = (int(size[0]), int(size[1]))
        self.fps = source.fps

    def content_key(self, ids: Sequence[int] | None = None) -> str:
        return text_stamp("resized", self.policy, self.size, self.source.content_key(ids))

    def read(self, ids: Sequence[int]) -> Frames:
        import cv2

        flag = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                "lanczos": cv2.INTER_LANCZOS4}[self.policy]
        frames = self.source.read(ids)
        height, width = self.size
        rgb = np.stack([cv2.resize(f, (width, height), interpolation=flag) for f in frames.rgb])
        alpha = None
        if frames.alpha is not None:
            alpha = np.stack([np.clip(cv2.resize(a, (width, height), interpolation=flag), 0, 1) for a in frames.alpha])
        return Frames(list(ids), rgb, alpha)
