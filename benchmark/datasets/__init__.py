"""Dataset readers: INSTA, IMavatar / PointAvatar, NeRFace, and the synthetic dataset.

``open_dataset(path, kind=None)`` detects the layout (or takes ``kind``; ``"frames"``: one
sequence of frames given directly, see :mod:`benchmark.datasets.adhoc`) and returns a
:class:`Dataset` of :class:`Sequence` objects; a folder whose sub-folders are sequences of one
layout (several INSTA actors, several synthetic sequences) gives all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from benchmark.datasets.base import Dataset, Sequence
from benchmark.io import list_folder
from metrics.errors import InputError

__all__ = ["Dataset", "Sequence", "KINDS", "detect_kind", "open_dataset"]


def _readers() -> dict[str, tuple[Callable[[Path], bool], Callable[[Path], list[Sequence]]]]:
    from benchmark.datasets import imavatar, insta, nerface

    return {
        "insta": (insta.is_insta, lambda p: [insta.read_insta(p)]),
        "imavatar": (imavatar.is_imavatar, imavatar.read_imavatar),
        "nerface": (nerface.is_nerface, lambda p: [nerface.read_nerface(p)]),
    }


KINDS = ("insta", "synthetic", "imavatar", "pointavatar", "nerface", "frames")


def detect_kind(path: str | os.PathLike) -> str:
    """The layout of ``path`` (or of its sub-folders); an InputError when none matches."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    readers = _readers()
    for kind, (matches, _) in readers.items():
        if matches(root):
            return kind
    for child in [p for p in list_folder(root) if p.is_dir()]:
        for kind, (matches, _) in readers.items():
            if matches(child):
                return kind
    raise InputError(
        f"{root}: not a dataset folder (expected INSTA transforms.json + images/, IMavatar "
        "flame_params.json + image/, or NeRFace transforms_{train,val,test}.json)"
    )


def open_dataset(path: str | os.PathLike, kind: str | None = None) -> Dataset:
    """Open the dataset at ``path``; ``kind`` is one of :data:`KINDS` or None to detect it."""
    root = Path(path)
    if kind is not None and kind not in KINDS:
        raise InputError(f"dataset kind {kind!r}: choose from {', '.join(KINDS)}")
    if kind == "frames":  # one sequence of frames given directly (benchmark.datasets.adhoc)
        from benchmark.datasets.adhoc import read_frames_sequence

        return Dataset(kind="frames", root=root, sequences=[read_frames_sequence(root)])
    detected = detect_kind(root)
    reader_kind = {"synthetic": "insta", "pointavatar": "imavatar"}.get(kind or detected, kind or detected)
    if reader_kind != detected:
        raise InputError(f"{root}: looks like a {detected} folder, not {kind}")
    matches, read = _readers()[reader_kind]
    if matches(root):
        sequences = read(root)
    else:
        sequences = []
        for child in [p for p in list_folder(root) if p.is_dir()]:
            if matches(child):
                sequences.extend(read(child))
    if kind == "synthetic" and not all(s.kind == "synthetic" for s in sequences):
        raise InputError(f"{root}: an INSTA folder not written by cabench synth")
    label = kind or (sequences[0].kind if sequences and all(s.kind == sequences[0].kind for s in sequences) else detected)
    return Dataset(kind=label, root=root, sequences=sequences)
