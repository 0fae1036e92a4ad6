"""Folder adapters: methods whose renders are stored as one image per frame.

Each is named as the paper's Table 1 row (NHA, NeRFace, IMAvatar, PointAvatar, and AvatarMAV,
which Table 1 calls "MAAvatar"). Settings:

- ``path``: the folder of renders (``{sequence}`` / ``{root}`` placeholders allowed);
- ``pattern``: file name of one frame, with ``{id}`` (the frame number written in the name,
  e.g. ``"{id:05d}.png"``; IMavatar / PointAvatar write 1-based ``"{id}.png"``);
- ``id_offset``: number in the file name minus the ground truth's frame id (1 when the method
  numbers from 1 but the ground truth from 0);
- ``split``: the ground-truth split the renders cover (default ``test``).

Every frame of the split must be present; extra files that match the pattern are an error
(they mean the renders belong to another split or sequence). RGBA renders are composited on white.
"""

from __future__ import annotations

from baselines.base import Adapter, MethodOutput, fill_path
from baselines.outputs import numbered_files
from benchmark.datasets.base import Sequence
from benchmark.datasets.frames import FileFrames, RemappedFrames


class FolderAdapter(Adapter):
    key = "folder"
    row = "method"
    default_pattern = "{id:05d}.png"
    path_settings = ("path",)

    def __init__(self, path: str, pattern: str | None = None, id_offset: int = 0, name: str | None = None,
                 split: str = "test"):
        super().__init__(name=name, split=split)
        self.path = path
        self.pattern = pattern or self.default_pattern
        self.id_offset = int(id_offset)

    def outputs(self, sequence: Sequence) -> MethodOutput:
        ids = self.frame_ids(sequence)
        folder = fill_path(self.path, sequence, "path")
        numbers = [i + self.id_offset for i in ids]
        files = numbered_files(folder, self.pattern, numbers, "id", f"{self.name} ({sequence.name})")
        alignment = {"source": str(folder), "pattern": self.pattern, "id_offset": self.id_offset}
        source = FileFrames(dict(zip(numbers, files)), name=f"{self.name}:{folder}")
        if self.id_offset != 0:
            source = RemappedFrames(source, dict(zip(ids, numbers)), name=source.name)
        return MethodOutput(source, alignment)


class NHA(FolderAdapter):
    key, row = "nha", "NHA"


class NeRFace(FolderAdapter):
    key, row = "nerface", "NeRFace"


class IMAvatar(FolderAdapter):
    key, row = "imavatar", "IMAvatar"
    default_pattern = "{id}.png"


class PointAvatar(FolderAdapter):
    key, row = "pointavatar", "PointAvatar"
    default_pattern = "{id}.png"


class AvatarMAV(FolderAdapter):
    key, row = "avatarmav", "MAAvatar"


class MAAvatar(AvatarMAV):
    """The same adapter under the name the paper's Table 1 uses."""

    key = "maavatar"
