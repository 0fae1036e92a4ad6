"""Frame sources the dataset readers and adapters build on top of :mod:`benchmark.io`.

- :class:`FileFrames` (from :mod:`benchmark.io`): frames listed explicitly as ``{frame id: file}``
  (a json's ``file_path`` entries, a method's files found by a name pattern), so that ids come
  from the dataset's own records rather than from whatever numbers the file names carry.
- :class:`RemappedFrames`: another source seen under new frame ids (a method that numbers its
  outputs by test index or by decode order, mapped onto the ground truth's frame ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from benchmark.io import FileFrames, Frames, FrameSource, MaskFiles, mask_frames
from benchmark.stamps import text_stamp
from metrics.errors import InputError

__all__ = ["FileFrames", "MaskFiles", "MatteOf", "RemappedFrames"]


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
        return Frames(list(ids), inner.rgb, inner.alpha, inner.colour)

    def content_key(self, ids: Sequence[int] | None = None) -> str:
        ids = list(self.frame_ids if ids is None else ids)
        self._check_ids(ids)
        inner = [self.mapping[i] for i in ids]
        return text_stamp("remapped", ids, inner, self.source.content_key(inner))


def _key_of(mapping: Mapping[int, int], value: int) -> int:
    return next(k for k, v in mapping.items() if v == value)


class MatteOf(FrameSource):
    """The matte (alpha) of an RGBA frame source, served as a mask source."""

    def __init__(self, source: FrameSource):
        self.source = source
        self.name = f"{source.name} (alpha)"
        self.frame_ids = source.frame_ids
        self.size = source.size
        self.fps = source.fps

    def content_key(self, ids: Sequence[int] | None = None) -> str:
        return text_stamp("matte", self.source.content_key(ids))

    def read(self, ids: Sequence[int]) -> Frames:
        frames = self.source.read(ids)
        if frames.alpha is None:
            raise InputError(f"{self.source.name}: frames have no alpha channel to use as the mask")
        return mask_frames(list(ids), frames.alpha)
