"""IMavatar / PointAvatar video folders.

Layout (IMavatar ``code/datasets/real_dataset.py``, ``preprocess``)::

    <subject>/<subject>/<video>/image/{N}.png      1-based frame names (ffmpeg %d)
    <subject>/<subject>/<video>/mask/{N}.png       MODNet matte (the frames' matte: composited on
                                                   white, as IMavatar's and PointAvatar's scripts do)
    <subject>/<subject>/<video>/flame_params.json  shape_params, intrinsics, frames[]

Each ``frames[]`` entry has ``file_path`` (``./image/N``), ``expression`` (50), ``pose`` (15 =
global 3 + neck 3 + jaw 3 + eyes 6), ``flame_keypoints`` (2-D in [-1, 1]; the first 68 are the
face landmarks) and ``world_mat``. Frame ids stay 1-based, as the file names are. Annotations:
``expression``, ``pose_full`` (15), ``pose`` (6 = global + jaw, DECA's convention) and
``landmarks`` (pixels: ``(k + 1) * size / 2``, as IMavatar's metric script maps them).
A sequence is one video; IMavatar splits by video (test video MVI_1812), so no per-frame
split is recorded and every frame of the video is evaluated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.datasets.base import (
    EXPRESSION,
    LANDMARKS,
    POSE,
    POSE_FULL,
    DatasetReader,
    Sequence,
    as_array,
    frame_entries,
    load_json,
    require,
    stack_rows,
)
from benchmark.datasets.frames import FileFrames, MaskFiles
from metrics.errors import InputError

PARAMS = "flame_params.json"


def _video_folders(root: Path) -> list[Path]:
    if (root / PARAMS).is_file():
        return [root]
    found = []
    for depth in ("*", "*/*", "*/*/*"):
        found.extend(p.parent for p in root.glob(f"{depth}/{PARAMS}"))
        if found:
            break
    return sorted(found)


def is_imavatar(root: Path) -> bool:
    return any((v / "image").is_dir() for v in _video_folders(Path(root)))


def read_imavatar(root: Path) -> list[Sequence]:
    """Every video folder under ``root`` (``root`` itself when it holds flame_params.json)."""
    root = Path(root)
    videos = _video_folders(root)
    if not videos:
        raise InputError(f"{root / PARAMS}: file not found (nor in sub-folders)")
    sequences = []
    for video in videos:
        name = video.name if video == root else "/".join(dict.fromkeys(video.relative_to(root).parts))
        sequences.append(read_video(video, name=name))
    return sequences


def read_video(folder: Path, name: str | None = None) -> Sequence:
    path = folder / PARAMS
    data = load_json(path)
    images, masks, rows = {}, {}, {EXPRESSION: [], POSE_FULL: [], "keypoints": []}
    for index, entry, image, frame in frame_entries(data, path, folder):
        where = f" in frames[{index}]"
        if frame in images:
            raise InputError(f"{path}: frame {frame} is listed twice")
        images[frame] = image
        masks[frame] = folder / "mask" / image.name
        rows[EXPRESSION].append(as_array(require(entry, "expression", path, where), (-1,), path, f"frames[{index}] expression"))
        rows[POSE_FULL].append(as_array(require(entry, "pose", path, where), (15,), path, f"frames[{index}] pose"))
        if "flame_keypoints" in entry:
            rows["keypoints"].append(as_array(entry["flame_keypoints"], (-1, 2), path, f"frames[{index}] flame_keypoints"))
    order = sorted(images)
    position = {frame: i for i, frame in enumerate(images)}
    mattes = {f: masks[f] for f in order} if (folder / "mask").is_dir() else None
    frames = FileFrames({f: images[f] for f in order}, name=str(folder / "image"), source=str(path), mattes=mattes)
    mask = None if mattes is None else MaskFiles(mattes, name=str(folder / "mask"), source=str(path))

    def aligned(key):
        return stack_rows([rows[key][position[f]] for f in order], path, key)

    pose_full = aligned(POSE_FULL)
    annotations = {EXPRESSION: aligned(EXPRESSION), POSE_FULL: pose_full,
                   POSE: np.concatenate([pose_full[:, 0:3], pose_full[:, 6:9]], axis=1)}
    if len(rows["keypoints"]) == len(images):
        keypoints = aligned("keypoints")
        if keypoints.shape[1] < 68:
            raise InputError(f"{path}: flame_keypoints has {keypoints.shape[1]} points, expected at least 68")
        height, width = frames.size
        annotations[LANDMARKS] = (keypoints[:, :68] + 1.0) * np.array([width, height]) / 2.0
    return Sequence(name=name or folder.name, frames=frames, mask=mask, annotations=annotations,
                    fps=None, splits={}, root=folder, kind="imavatar")


READER = DatasetReader("imavatar", is_imavatar, read_imavatar)
