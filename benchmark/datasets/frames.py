"""Frame sources the dataset readers and adapters build on top of :mod:`benchmark.io`.

- :class:`FileFrames`: frames listed explicitly as ``{frame id: file}`` (a json's ``file_path``
  entries, a method's files found by a name pattern), so that ids come from the dataset's own
  records rather than from whatever numbers the file names carry.
- :class:`RemappedFrames`: another source seen under new frame ids (a method that numbers its
  outputs by test index or by decode order, mapped onto the ground truth's frame ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from benchmark.io import Frames, FrameSource, composite, read_image
from metrics.errors import InputError


class FileFrames(FrameSource):
    """Frames read from explicitly listed files; RGBA is composited on ``background``, alpha kept.

    Every listed file must exist (checked up front, so a missing frame is reported before any
    work starts, by its path); sizes are checked against the first file as frames are read.
    """

    def __init__(self, files: Mapping[int, Path], name: str, background=(255, 255, 255),
                 fps: float | None = None, source: str | None = None):
        if not files:
            raise InputError(f"{name}: no frames listed")
        missing = [Path(p) for p in files.values() if not Path(p).is_file()]
        if missing:
            where = f" (listed in {source})" if source else ""
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise InputError(f"{missing[0]}: frame file not found{where}{more}")
        self.files = {int(k): Path(v) for k, v in sorted(files.items())}
        self.frame_ids = list(self.files)
        self.name = name
        self.background = tuple(int(c) for c in background)
        self.fps = fps
        first = read_image(self.files[self.frame_ids[0]])
        self.size = (int(first.shape[0]), int(first.shape[1]))

    def read(self, ids: Sequence[int]) -> Frames:
        self._check_ids(ids)
        rgbs, alphas, any_alpha = [], [], False
        for frame in ids:
            path = self.files[frame]
            array = read_image(path)
            if array.shape[:2] != self.size:
                raise InputError(f"{path}: size {array.shape[1]}x{array.shape[0]} differs from "
                                 f"{self.size[1]}x{self.size[0]} (the first frame of {self.name})")
            if array.shape[-1] == 4:
                rgb, alpha = composite(array, self.background)
                any_alpha = True
            else:
                rgb, alpha = array, np.ones(self.size, dtype=np.float32)
            rgbs.append(rgb)
            alphas.append(alpha)
        return Frames(list(ids), np.stack(rgbs), np.stack(alphas) if any_alpha else None)


class RemappedFrames(FrameSource):
    """``source`` seen under new ids: ``mapping[new_id] = id in source`` (insertion order kept)."""

    def __init__(self, source: FrameSource, mapping: Mapping[int, int], name: str | None = None,
                 fps: float | None = None):
        known = set(source.frame_ids)
        absent = [old for old in mapping.values() if old not in known]
        if absent:
            raise InputError(f"{source.name}: has no frame {absent[0]} (needed for frame {_key_of(mapping, absent[0])})")
        self.source = source
        self.mapping = {int(k): int(v) for k, v in mapping.items()}
        self.frame_ids = list(self.mapping)
        self.name = name or source.name
        self.size = source.size
        self.fps = fps if fps is not None else source.fps

    def read(self, ids: Sequence[int]) -> Frames:
        self._check_ids(ids)
        inner = self.source.read([self.mapping[i] for i in ids])
        return Frames(list(ids), inner.rgb, inner.alpha)


def _key_of(mapping: Mapping[int, int], value: int) -> int:
    return next(k for k, v in mapping.items() if v == value)


class MaskFiles(FileFrames):
    """Mask images listed explicitly: alpha (RGBA) or the first channel, scaled to [0,1], as ``alpha``."""

    def read(self, ids: Sequence[int]) -> Frames:
        self._check_ids(ids)
        masks = []
        for frame in ids:
            path = self.files[frame]
            array = read_image(path)
            if array.shape[:2] != self.size:
                raise InputError(f"{path}: mask size {array.shape[1]}x{array.shape[0]} differs from "
                                 f"{self.size[1]}x{self.size[0]}")
            channel = array[..., 3] if array.shape[-1] == 4 else array[..., 0]
            masks.append(channel.astype(np.float32) / 255.0)
        return _mask_frames(list(ids), np.stack(masks))


class MatteOf(FrameSource):
    """The matte (alpha) of an RGBA frame source, served as a mask source."""

    def __init__(self, source: FrameSource):
        self.source = source
        self.name = f"{source.name} (alpha)"
        self.frame_ids = source.frame_ids
        self.size = source.size
        self.fps = source.fps

    def read(self, ids: Sequence[int]) -> Frames:
        frames = self.source.read(ids)
        if frames.alpha is None:
            raise InputError(f"{self.source.name}: frames have no alpha channel to use as the mask")
        return _mask_frames(list(ids), frames.alpha)


def _mask_frames(ids: list[int], mask: np.ndarray) -> Frames:
    rgb = np.repeat(np.rint(mask * 255).astype(np.uint8)[..., None], 3, axis=-1)
    return Frames(ids, rgb, mask.astype(np.float32))
