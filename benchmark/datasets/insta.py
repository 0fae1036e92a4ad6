"""INSTA actor folders (also the layout the synthetic dataset is written in).

Layout (INSTA's ``scripts/transforms.py`` and ``postprocess.py``)::

    <actor>/images/{id:05d}.png        RGBA, cloth removed; composited on white here, alpha = matte
    <actor>/seg_mask/ depth/ meshes/   not needed for evaluation
    <actor>/flame/exp/{id:05d}.txt     FLAME expression (100 values; only ``exp`` is dumped)
    <actor>/transforms.json            all frames; ``transforms_{train,test,val}.json`` the splits

Frame ids are the numbers of the ``file_path`` entries (0-based). Splits come from the split
files; without them INSTA's rule applies: test = the last 350 frames, val = the last 20, train =
the rest. Per-frame ``pose`` (6), ``expression`` and ``landmarks`` (68x2 pixels) entries, which
the synthetic generator writes (with ``head_euler_deg``: yaw, pitch, roll in degrees), become
annotations when every frame has them. A top-level
``fps`` is used when present (INSTA itself records none). An ``audio.wav`` in the actor folder
(``cabench synth --audio`` writes one) is the sequence's audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.datasets.audio import beside_frames
from benchmark.datasets.base import (
    EXPRESSION,
    LANDMARKS,
    POSE,
    DatasetReader,
    Sequence,
    as_array,
    load_json,
    read_vector,
    require,
    stack_rows,
)
from benchmark.datasets.frames import FileFrames, MatteOf
from benchmark.io import frame_id_of
from metrics.errors import InputError

SPLITS = ("train", "test", "val")
TEST_FRAMES = 350
VAL_FRAMES = 20
SYNTHETIC_GENERATOR = "cabench synth"


def is_insta(folder: Path) -> bool:
    has_json = (folder / "transforms.json").is_file() or (folder / "transforms_test.json").is_file()
    return has_json and (folder / "images").is_dir()


def default_splits(ids: list[int], test_frames: int = TEST_FRAMES, val_frames: int = VAL_FRAMES) -> dict[str, list[int]]:
    """INSTA's rule: test = the last ``test_frames``, val = the last ``val_frames`` (inside test)."""
    test = ids[-test_frames:] if test_frames else []
    return {"train": ids[: len(ids) - len(test)], "test": test, "val": ids[-val_frames:] if val_frames else []}


def _frame_entries(path: Path) -> list[dict]:
    data = load_json(path)
    frames = require(data, "frames", path)
    if not isinstance(frames, list):
        raise InputError(f"{path}: 'frames' must be a list")
    return frames


def _entry_id(entry: dict, index: int, path: Path, root: Path) -> tuple[int, Path]:
    file_path = require(entry, "file_path", path, f" in frames[{index}]")
    image = (root / file_path).resolve()
    if image.suffix == "" and not image.exists():
        image = image.with_suffix(".png")
    try:
        return frame_id_of(image), image
    except InputError:
        raise InputError(f"{path}: frames[{index}] file_path {file_path!r} has no frame number") from None


def read_insta(root: Path, name: str | None = None) -> Sequence:
    """Read one INSTA actor folder (see the module docstring)."""
    root = Path(root)
    all_json = root / "transforms.json"
    split_json = {s: root / f"transforms_{s}.json" for s in SPLITS}
    sources = [all_json] if all_json.is_file() else [p for p in split_json.values() if p.is_file()]
    if not sources:
        raise InputError(f"{all_json}: file not found (nor transforms_{{train,test,val}}.json)")

    entries: dict[int, tuple[dict, Path]] = {}
    files: dict[int, Path] = {}
    for path in sources:
        for index, entry in enumerate(_frame_entries(path)):
            frame, image = _entry_id(entry, index, path, root)
            entries.setdefault(frame, (entry, path))
            files[frame] = image
    if not entries:
        raise InputError(f"{sources[0]}: 'frames' is empty")
    ids = sorted(entries)

    top = load_json(sources[0])
    fps = float(top["fps"]) if isinstance(top, dict) and top.get("fps") else None
    frames = FileFrames({i: files[i] for i in ids}, name=str(root / "images"), fps=fps, source=str(sources[0]))

    splits = {}
    for split, path in split_json.items():
        if path.is_file():
            splits[split] = sorted(_entry_id(e, k, path, root)[0] for k, e in enumerate(_frame_entries(path)))
            unknown = sorted(set(splits[split]) - set(ids))
            if unknown:
                raise InputError(f"{path}: frame {unknown[0]} is not in {sources[0].name}")
    if not splits:
        splits = default_splits(ids)

    annotations = _annotations(root, ids, entries)
    synthetic = isinstance(top, dict) and top.get("generator") == SYNTHETIC_GENERATOR
    extras = {}
    for key, folder in (("normal", "normal"), ("stage1_rgb", "stage1/rgb"), ("stage1_normal", "stage1/normal")):
        if (root / folder).is_dir():
            extras[key] = root / folder
    return Sequence(
        name=name or root.name,
        frames=frames,
        mask=MatteOf(frames),
        annotations=annotations,
        fps=fps,
        splits=splits,
        root=root,
        kind="synthetic" if synthetic else "insta",
        extras=extras,
        audio_file=beside_frames(root),
    )


def _annotations(root: Path, ids: list[int], entries: dict[int, tuple[dict, Path]]) -> dict[str, np.ndarray]:
    annotations: dict[str, np.ndarray] = {}
    exp_dir = root / "flame" / "exp"
    if exp_dir.is_dir():
        rows = []
        for frame in ids:
            entry, _ = entries[frame]
            rel = entry.get("exp_path")
            rows.append(read_vector(root / rel if rel else exp_dir / f"{frame:05d}.txt"))
        annotations[EXPRESSION] = stack_rows(rows, exp_dir, "expression")
    for key, shape in ((POSE, (6,)), (EXPRESSION, (-1,)), (LANDMARKS, (68, 2)), ("head_euler_deg", (3,))):
        if key in annotations or not all(key in entries[f][0] for f in ids):
            continue
        rows = [as_array(entries[f][0][key], shape, entries[f][1], f"frame {f} {key!r}") for f in ids]
        annotations[key] = stack_rows(rows, entries[ids[0]][1], key)
    return annotations


READER = DatasetReader("insta", is_insta, lambda path: [read_insta(path)])
