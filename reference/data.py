"""Training / inference data for the reference pipeline, read from the INSTA-style sequence layout.

Layout of one sequence folder ``<seq>/`` (the synthetic set of `cabench synth` and INSTA):
``images/{id:05d}.png`` RGBA ground truth, ``stage1/rgb/{id:05d}.png`` and
``stage1/normal/{id:05d}.png`` the stage-1 renders, ``flame/exp/{id:05d}.txt`` 100 expression
values, and ``transforms_{split}.json`` whose ``frames[]`` name ``file_path`` and, in the
synthetic set, ``pose`` (global rotation + jaw, axis-angle, 6 floats). Real INSTA frames have no
``pose`` field; those frames get zeros and :attr:`SequenceData.pose_missing` says so.

RGBA images are composited on a white background. This module reads files itself (reference does
not depend on the benchmark package).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrics.errors import InputError

POSE_DIM, EXPRESSION_DIM = 6, 100


@dataclass
class SequenceData:
    """Aligned arrays of one split: uint8 (T,H,W,3) images, float32 (T,6) pose, (T,100) expression."""

    frame_ids: list[int]
    image: np.ndarray
    rgb: np.ndarray
    normal: np.ndarray
    pose: np.ndarray
    expression: np.ndarray
    pose_missing: bool = False

    def __len__(self) -> int:
        return len(self.frame_ids)


def read_rgb(path: Path, size: int | None = None, background: int = 255) -> np.ndarray:
    """An image file as uint8 (H,W,3); RGBA is composited on a flat ``background``."""
    from PIL import Image

    if not path.is_file():
        raise InputError(f"missing image {path}")
    with Image.open(path) as img:
        img = img.convert("RGBA") if img.mode in ("RGBA", "LA", "P") else img.convert("RGB")
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        arr = np.asarray(img)
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255
        arr = np.round(arr[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8)
    return arr


def _frame_id(file_path: str) -> int:
    numbers = re.findall(r"\d+", Path(file_path).stem)
    if not numbers:
        raise InputError(f"frame file name {file_path!r} has no frame number")
    return int(numbers[-1])


def sequence_folders(root: str | Path) -> list[Path]:
    """``root`` itself when it is a sequence folder, else its sequence subfolders (sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    if any(root.glob("transforms*.json")):
        return [root]
    seqs = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("transforms*.json")))
    if not seqs:
        raise InputError(f"{root} holds no sequence folder (no transforms*.json found)")
    return seqs


def load_sequence(folder: str | Path, split: str = "train", size: int | None = None) -> SequenceData:
    """Read one split (``train``, ``test`` or ``all``) of a sequence folder into memory."""
    folder = Path(folder)
    name = "transforms.json" if split == "all" else f"transforms_{split}.json"
    meta_path = folder / name
    if not meta_path.is_file():
        raise InputError(f"missing {meta_path}")
    try:
        frames = json.loads(meta_path.read_text())["frames"]
    except (ValueError, KeyError) as error:
        raise InputError(f"{meta_path} is not an INSTA transforms file: {error}") from error
    if not frames:
        raise InputError(f"{meta_path} lists no frames")
    ids, images, rgbs, normals, poses, exprs = [], [], [], [], [], []
    pose_missing = False
    for frame in frames:
        fid = _frame_id(frame["file_path"])
        ids.append(fid)
        images.append(read_rgb(folder / "images" / f"{fid:05d}.png", size))
        rgbs.append(read_rgb(folder / "stage1" / "rgb" / f"{fid:05d}.png", size))
        normals.append(read_rgb(folder / "stage1" / "normal" / f"{fid:05d}.png", size, background=128))
        exp_path = folder / "flame" / "exp" / f"{fid:05d}.txt"
        if not exp_path.is_file():
            raise InputError(f"missing expression file {exp_path}")
        exp = np.loadtxt(exp_path, dtype=np.float32).reshape(-1)
        if exp.size < EXPRESSION_DIM:
            raise InputError(f"{exp_path} holds {exp.size} values, expected {EXPRESSION_DIM}")
        exprs.append(exp[:EXPRESSION_DIM])
        pose = frame.get("pose")
        if pose is None:
            pose_missing = True
            pose = [0.0] * POSE_DIM
        if len(pose) != POSE_DIM:
            raise InputError(f"{meta_path}: frame {fid} pose has {len(pose)} values, expected {POSE_DIM}")
        poses.append(np.asarray(pose, dtype=np.float32))
    return SequenceData(ids, np.stack(images), np.stack(rgbs), np.stack(normals), np.stack(poses),
                        np.stack(exprs), pose_missing)


def load_dataset(root: str | Path, split: str = "train", size: int | None = None) -> SequenceData:
    """All sequences under ``root`` concatenated (frame ids are kept per sequence)."""
    parts = [load_sequence(seq, split, size) for seq in sequence_folders(root)]
    if len(parts) == 1:
        return parts[0]
    cat = lambda attr: np.concatenate([getattr(p, attr) for p in parts])  # noqa: E731
    return SequenceData(
        [i for p in parts for i in p.frame_ids], cat("image"), cat("rgb"), cat("normal"), cat("pose"),
        cat("expression"), any(p.pose_missing for p in parts),
    )


def nearest_frame_distance(query: np.ndarray, reference: np.ndarray, same: bool = False) -> np.ndarray:
    """For each row of ``query`` (T, D), the Euclidean distance to its nearest row of ``reference`` (R, D),
    float64. ``same=True`` (``query`` is ``reference``): each frame's own row is left out, giving the
    distance to its nearest *other* frame. Used on pose (6) or expression (100) vectors, it says how far
    a test frame lies from what the model was trained on, against the spacing of the training frames."""
    query, reference = np.asarray(query, np.float64), np.asarray(reference, np.float64)
    if query.ndim != 2 or reference.ndim != 2 or query.shape[1] != reference.shape[1]:
        raise InputError(f"nearest_frame_distance needs (T,D) and (R,D) arrays, got {query.shape} and {reference.shape}")
    if same and query.shape != reference.shape:
        raise InputError("same=True needs the query to be the reference")
    if len(reference) < (2 if same else 1):
        raise InputError("nearest_frame_distance needs reference frames to compare with")
    squared = (query**2).sum(1)[:, None] - 2 * query @ reference.T + (reference**2).sum(1)[None, :]
    if same:
        np.fill_diagonal(squared, np.inf)
    return np.sqrt(np.clip(squared.min(axis=1), 0, None))


def split_coverage(folder: str | Path) -> dict[str, float]:
    """Medians of :func:`nearest_frame_distance` for one sequence folder: test frames to their nearest
    training frame, and training frames to their nearest other training frame, for pose and expression."""
    train, test = load_sequence(folder, "train", 8), load_sequence(folder, "test", 8)
    out = {}
    for name in ("pose", "expression"):
        a, b = getattr(train, name), getattr(test, name)
        out[f"{name}_test_to_train"] = float(np.median(nearest_frame_distance(b, a)))
        out[f"{name}_train_to_train"] = float(np.median(nearest_frame_distance(a, a, same=True)))
    return out
