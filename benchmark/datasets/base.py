"""What every dataset reader returns, and the file helpers whose errors name the file.

A :class:`Sequence` is one recorded video of one subject: its ground-truth frames (composited
on white, the matte kept as alpha), an optional mask source, per-frame annotations as arrays
aligned to ``frames.frame_ids`` (row ``i`` belongs to frame ``frame_ids[i]``), an fps when the
layout records one, and splits (``{"train": [ids], "test": [ids], ...}``). Readers keep the frame
ids the layout uses (INSTA: 0-based from the file names; IMavatar: 1-based), never list positions.
A sequence may carry audio: ``audio_file`` (a video with an audio stream, or a ``.wav``) and
``audio_offset`` (seconds of its first sample after frame 0), read and checked on demand by
:meth:`Sequence.audio` (:mod:`benchmark.datasets.audio`), so runs that need no audio never decode it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.io import FrameSource, frame_id_of
from metrics.audio import Audio
from metrics.errors import InputError

# Annotation names shared by all readers (each reader fills those its layout has).
POSE = "pose"            # (T, 6) global axis-angle 3 + jaw axis-angle 3, FLAME/DECA convention
POSE_FULL = "pose_full"  # (T, 15) IMavatar: global 3 + neck 3 + jaw 3 + eyes 6
EXPRESSION = "expression"  # (T, E) FLAME (INSTA 100, IMavatar 50) or Face2Face (NeRFace 76)
LANDMARKS = "landmarks"  # (T, 68, 2) pixel coordinates (x, y) in the frame


@dataclass
class Sequence:
    """One ground-truth video with its annotations (see the module docstring for conventions)."""

    name: str
    frames: FrameSource
    mask: FrameSource | None = None
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    fps: float | None = None
    splits: dict[str, list[int]] = field(default_factory=dict)
    root: Path | None = None
    kind: str = "frames"
    extras: dict[str, Any] = field(default_factory=dict)
    audio_file: Path | None = None
    audio_offset: float = 0.0

    def audio(self) -> Audio | None:
        """The sequence's audio aligned to its frames (None when it has none); a file that cannot
        serve (unreadable, no samples, wrong rate or length) is an InputError naming it."""
        from benchmark.datasets.audio import check_length, read_audio

        if self.audio_file is None:
            return None
        if not self.fps:
            raise InputError(f"{self.audio_file}: {self.name} records no frame rate, so its audio cannot be aligned")
        audio = read_audio(self.audio_file, self.fps, self.audio_offset)
        check_length(audio, len(self.frame_ids))
        return audio

    @property
    def frame_ids(self) -> list[int]:
        return self.frames.frame_ids

    def split_ids(self, split: str | None) -> list[int]:
        """Frame ids of ``split`` (``None``, ``"all"``, or any split of a sequence with none: every frame)."""
        if split in (None, "all") or not self.splits:
            return list(self.frame_ids)
        if split not in self.splits:
            raise InputError(f"{self.name}: no split {split!r} (has {', '.join(self.splits) or 'none'})")
        return list(self.splits[split])

    def split_frames(self, split: str | None) -> FrameSource:
        """The ground-truth frames of ``split`` only (what a method's outputs are aligned against)."""
        from benchmark.datasets.frames import RemappedFrames

        ids = self.split_ids(split)
        return RemappedFrames(self.frames, {i: i for i in ids}, name=f"{self.frames.name} [{split}]")

    def split_mask(self, split: str | None) -> FrameSource | None:
        """The masks of ``split`` only, or None when the layout has none."""
        from benchmark.datasets.frames import RemappedFrames

        if self.mask is None:
            return None
        return RemappedFrames(self.mask, {i: i for i in self.split_ids(split)}, name=f"{self.mask.name} [{split}]")

    def annotation(self, key: str, ids: list[int] | None = None) -> np.ndarray:
        """Rows of annotation ``key`` for ``ids`` (default: all frames)."""
        if key not in self.annotations:
            raise InputError(f"{self.name}: no {key!r} annotation (has {', '.join(self.annotations) or 'none'})")
        values = self.annotations[key]
        if ids is None:
            return values
        index = {frame: i for i, frame in enumerate(self.frame_ids)}
        return values[[index[i] for i in ids]]


@dataclass(frozen=True)
class DatasetReader:
    """How a dataset kind is recognised and read.

    layout: the folder layout the reader reads; two kinds share one where a layout serves two
        sources (``synthetic``: INSTA's layout written by ``cabench synth``; ``pointavatar``: IMavatar's).
    matches: whether a folder is one sequence (or video folder) of this layout; None for a kind that
        is never detected, only named (``frames``: one sequence given directly).
    read: the sequences of a folder that matches.
    """

    layout: str
    matches: Callable[[Path], bool] | None
    read: Callable[[Path], list[Sequence]]


@dataclass
class Dataset:
    """The sequences found under one folder, in name order."""

    kind: str
    root: Path
    sequences: list[Sequence]

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self):
        return iter(self.sequences)

    def names(self) -> list[str]:
        return [s.name for s in self.sequences]

    def sequence(self, name: str) -> Sequence:
        for seq in self.sequences:
            if seq.name == name:
                return seq
        raise InputError(f"{self.root}: no sequence {name!r} (has {', '.join(self.names())})")


def load_json(path: Path) -> Any:
    """Parse a json file; a missing or malformed file is an InputError naming it."""
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid json ({error})") from None


def require(record: dict, key: str, path: Path, where: str = "") -> Any:
    """``record[key]``, or an InputError naming the file (and the entry) that lacks it."""
    if not isinstance(record, dict) or key not in record:
        raise InputError(f"{path}: missing key {key!r}{where}")
    return record[key]


def frame_entries(data: Any, path: Path, root: Path) -> Iterator[tuple[int, dict, Path, int]]:
    """Yield ``(index, entry, image path, frame id)`` for each entry of a json's ``frames`` list.

    ``file_path`` is relative to ``root`` (``.png`` is appended when it has no suffix, as NeRFace
    and IMavatar write them); the frame id is the number in the file name. Errors name the json.
    """
    entries = require(data, "frames", path)
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: 'frames' must be a non-empty list")
    for index, entry in enumerate(entries):
        file_path = require(entry, "file_path", path, f" in frames[{index}]")
        image = root / (file_path if Path(file_path).suffix else f"{file_path}.png")
        try:
            frame = frame_id_of(image)
        except InputError:
            raise InputError(f"{path}: frames[{index}] file_path {file_path!r} has no frame number") from None
        yield index, entry, image, frame


def as_array(value: Any, shape: tuple, path: Path, what: str) -> np.ndarray:
    """``value`` as float64 with ``shape`` (-1 matches any length); wrong shapes name the file."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {what} is not numeric") from None
    ok = array.ndim == len(shape) and all(s == -1 or s == a for s, a in zip(shape, array.shape))
    if not ok:
        want = "x".join("N" if s == -1 else str(s) for s in shape)
        raise InputError(f"{path}: {what} has shape {'x'.join(map(str, array.shape))}, expected {want}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{path}: {what} holds NaN or infinite values")
    return array


def read_vector(path: Path) -> np.ndarray:
    """A whitespace-separated text vector (INSTA's ``flame/exp/*.txt``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    try:
        values = np.array([float(v) for v in text.split()], dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: not a whitespace-separated list of numbers") from None
    if values.size == 0:
        raise InputError(f"{path}: empty")
    return values


def stack_rows(rows: list[np.ndarray], path: Path, what: str) -> np.ndarray:
    """Stack per-frame vectors; differing lengths are an error naming the file."""
    lengths = sorted({len(r) for r in rows})
    if len(lengths) > 1:
        raise InputError(f"{path}: {what} vectors have different lengths {lengths}")
    return np.stack(rows)
