"""Content stamps: short strings that change whenever the content of a file, a folder or an array does.

A stored result is reused only while the stamps of everything it was computed from are unchanged
(see :mod:`benchmark.results.fingerprint`). The stamp of a file is its size and the SHA-256 of
all its bytes (:func:`metrics.digest.file_digest`), so any change of any byte changes it, whatever
happens to the file's modification time (``cp -p``, ``rsync -t``, archive extraction and some
editors restore it; an edit of the middle of an uncompressed BMP, TIFF, ``.npy`` or PNG frame
that keeps its size is caught). Neither the path nor the mtime is part of it: a copied or touched
but unchanged input reuses its results.

Cost: SHA-256 runs at about 1.7 GB/s on a core with the SHA extensions (x86 SHA-NI, ARMv8); a
350-frame 512x512 PNG sequence is about 150 MB, about 0.1 s, a few percent of evaluating it (the
frames are then read from the page cache); measured in docs/reliability.md.

Arrays held in memory are hashed in full too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from metrics.digest import file_digest


def file_stamp(path: str | os.PathLike) -> str:
    """``size:sha256`` of a file's whole content (see the module docstring)."""
    size, digest = file_digest(path)
    return f"{size}:{digest[:32]}"


def files_stamp(paths: Iterable[str | os.PathLike]) -> str:
    """One stamp for several files, in the order given (names are part of it)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{Path(path).name}={file_stamp(path)}\n".encode())
    return digest.hexdigest()[:20]


def tree_stamp(path: str | os.PathLike) -> str:
    """The stamp of a file, or of every file under a folder (relative names included)."""
    root = Path(path)
    if root.is_file():
        return file_stamp(root)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(root).as_posix()}={file_stamp(file)}\n".encode())
    return digest.hexdigest()[:20]


def array_stamp(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:20]


def text_stamp(*parts: object) -> str:
    """SHA-256 of the parts' text (a stamp made of other stamps and settings)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:20]
