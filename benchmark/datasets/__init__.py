"""Dataset readers: INSTA, IMavatar / PointAvatar, NeRFace, and the synthetic dataset.

``open_dataset(path, kind=None)`` detects the layout (or takes ``kind``; ``"frames"``: one
sequence of frames given directly, see :mod:`benchmark.datasets.adhoc`) and returns a
:class:`Dataset` of :class:`Sequence` objects; a folder whose sub-folders are sequences of one
layout (several INSTA actors, several synthetic sequences) gives all of them. Each kind names the
:class:`DatasetReader` of its module in :data:`READERS`, imported on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.datasets.base import Dataset, DatasetReader, Sequence
from benchmark.io import list_folder
from metrics.errors import InputError
from metrics.lazy import Registry

__all__ = ["Dataset", "DatasetReader", "KINDS", "READERS", "Sequence", "detect_kind", "open_dataset"]


READERS: Registry[DatasetReader] = Registry("dataset kind")
READERS.register_lazy("insta", "benchmark.datasets.insta:READER")
READERS.register_lazy("synthetic", "benchmark.datasets.insta:READER")  # INSTA's layout, written by cabench synth
READERS.register_lazy("imavatar", "benchmark.datasets.imavatar:READER")
READERS.register_lazy("pointavatar", "benchmark.datasets.imavatar:READER")  # PointAvatar reads IMavatar's layout
READERS.register_lazy("nerface", "benchmark.datasets.nerface:READER")
READERS.register_lazy("frames", "benchmark.datasets.adhoc:READER")

KINDS = tuple(READERS)


def _detectors() -> list[tuple[str, DatasetReader]]:
    """The layouts that can be recognised from a folder, in the order they are tried."""
    return [(kind, reader) for kind, reader in READERS.items() if reader.layout == kind and reader.matches is not None]


def detect_kind(path: str | os.PathLike) -> str:
    """The layout of ``path`` (or of its sub-folders); an InputError when none matches."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    detectors = _detectors()
    for kind, reader in detectors:
        if reader.matches(root):
            return kind
    for child in [p for p in list_folder(root) if p.is_dir()]:
        for kind, reader in detectors:
            if reader.matches(child):
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
    if kind is not None and READERS.get(kind).matches is None:  # given directly, e.g. "frames" (adhoc)
        return Dataset(kind=kind, root=root, sequences=READERS.get(kind).read(root))
    detected = detect_kind(root)
    reader = READERS.get(kind or detected)
    if reader.layout != detected:
        raise InputError(f"{root}: looks like a {detected} folder, not {kind}")
    matches, read = reader.matches, reader.read
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
