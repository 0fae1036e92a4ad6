"""Content stamps: short strings that change whenever the content of a file, a folder or an array does.

A stored result is reused only while the stamps of everything it was computed from are unchanged
(see :mod:`benchmark.results.fingerprint`). The stamp of a file is chosen to be cheap enough to
take of every frame of a paper-sized evaluation on each rerun, yet to change with the content:

    size, mtime_ns, and the SHA-256 of the file's first and last 4 KiB block

- Rewriting a file in place (a method's frames overwritten, a checkpoint retrained) changes its
  mtime, so the stamp changes even where size and both end blocks happen to stay the same.
- Copying content over with the old mtime kept (``cp -p``, ``rsync -t``) changes a frame's
  bytes at its ends (PNG/JPEG headers, compressed data, video containers), which are hashed.
- A full hash would also catch an edit of a file's middle that keeps its size and restores its
  mtime; it is not used because a rerun would then read every byte of every input (about 10 GB
  for 10 subjects x 350 frames x 10 methods of 512 px PNGs) only to find that nothing changed;
  the stamps of those 35,000 files read about 300 MB (two 4 KiB blocks each), mostly one page.
- Touching a file without changing it changes its stamp: the results are recomputed (safe).

Arrays held in memory are hashed in full (they are read anyway and cost no I/O).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

BLOCK = 4096


def file_stamp(path: str | os.PathLike) -> str:
    """``size:mtime_ns:sha256(first and last 4 KiB)`` of a file (see the module docstring)."""
    path = Path(path)
    info = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        digest.update(stream.read(BLOCK))
        if info.st_size > BLOCK:
            stream.seek(max(BLOCK, info.st_size - BLOCK))
            digest.update(stream.read(BLOCK))
    return f"{info.st_size}:{info.st_mtime_ns}:{digest.hexdigest()[:16]}"


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
