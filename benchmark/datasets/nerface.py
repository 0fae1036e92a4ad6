"""NeRFace sequences (``nerf/load_flame.py``).

Layout::

    <root>/transforms_{train,val,test}.json   camera_angle_x, intrinsics, frames[]
    <root>/{train,val,test}/f_XXXX.png        frames (``.png`` appended to file_path at load time)
    <root>/bg/00050.png                       the static background

Each ``frames[]`` entry has ``file_path`` (``./test/f_0000``), ``transform_matrix``,
``expression`` (76 Face2Face blendshape weights) and ``bbox``. Frame ids are the numbers in the
file names; the splits are the three json files. NeRFace renders and scores the full frame with
its background, so no matte is given (``mask`` is None) and frames are read as stored.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.datasets.base import (
    EXPRESSION,
    DatasetReader,
    Sequence,
    as_array,
    frame_entries,
    load_json,
    require,
    stack_rows,
)
from benchmark.datasets.frames import FileFrames
from metrics.errors import InputError

SPLITS = ("train", "val", "test")


def is_nerface(root: Path) -> bool:
    root = Path(root)
    return (root / "transforms_test.json").is_file() and (root / "transforms_train.json").is_file() \
        and not (root / "images").is_dir()


def read_nerface(root: Path, name: str | None = None) -> Sequence:
    root = Path(root)
    files, expressions, splits, owner = {}, {}, {}, {}
    for split in SPLITS:
        path = root / f"transforms_{split}.json"
        if not path.is_file():
            if split == "val":
                continue
            raise InputError(f"{path}: file not found")
        ids = []
        for index, entry, image, frame in frame_entries(load_json(path), path, root):
            where = f" in frames[{index}]"
            if frame in files and files[frame] != image:
                raise InputError(f"{path}: frame {frame} ({image.name}) is also {files[frame]} in {owner[frame].name}")
            files[frame], owner[frame] = image, path
            expressions[frame] = as_array(require(entry, "expression", path, where), (-1,), path,
                                          f"frames[{index}] expression")
            ids.append(frame)
        splits[split] = sorted(ids)
    order = sorted(files)
    frames = FileFrames({f: files[f] for f in order}, name=str(root), source=str(root / "transforms_*.json"))
    annotations = {EXPRESSION: stack_rows([expressions[f] for f in order], root / "transforms_test.json", "expression")}
    background = root / "bg" / "00050.png"
    return Sequence(name=name or root.name, frames=frames, mask=None, annotations=annotations, fps=None,
                    splits=splits, root=root, kind="nerface",
                    extras={"background": background} if background.is_file() else {})


READER = DatasetReader("nerface", is_nerface, lambda path: [read_nerface(path)])
