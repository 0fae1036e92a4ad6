"""Values computed from the ground truth alone, done once and shared by every method evaluated on it.

Every method of a sequence is compared with the same ground truth, so what a metric derives from
the ground truth alone (its flows, occlusion masks, face boxes and landmarks, identity
descriptors, DECA codes, LPIPS distances of adjacent frames) is the same for every method. A
:class:`TruthStore` computes such a value once and, given a folder, keeps it there across calls
(one ``benchmark.evaluate`` call per method) and across runs.

Keys (why a stored value cannot go stale): a value is stored under a SHA-256 of

- its *kind* (``flow``, ``occlusion``, ``face``, ...) and the options it was computed with
  (backend, weight file stamp, library versions, device type: whatever can change the value), and
- the content keys of the ground-truth frames it was computed from (:func:`content_key`: a
  SHA-256 of the prepared frame's pixels, salted with the protocol id and version that prepared
  them): one key for a per-frame value, two (source, target) for a pair value such as a flow.

Different pixels, options or versions give a different file name, so the caller needs to give
nothing but the folder, and a folder may be shared by runs, protocols and sequences.

Writes are atomic: each entry is written to a temporary file in its folder and renamed over the
target, so a reader sees a complete entry or none, a process killed mid-write (SIGKILL) leaves a
temporary file that is never read (and is removed once it is an hour old), and two processes
writing one entry write the same bytes, the last rename winning. Entries are not fsynced: after a
power loss an entry may be unreadable, and an unreadable entry is computed again and rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metrics.digest import weight_digest

Values = dict[str, np.ndarray]
STALE_TEMPORARY_SECONDS = 3600


def content_key(frame: torch.Tensor, salt: str = "") -> str:
    """SHA-256 of one prepared frame (C,H,W): its dtype, shape and pixel values, and ``salt``.

    The pixels are hashed in (H,W,C) order, so the key does not depend on the memory layout
    (channels-last or not) of the tensor holding them.
    """
    pixels = frame.detach().to("cpu").permute(1, 2, 0).contiguous().numpy()
    digest = hashlib.sha256(f"{salt}|{pixels.dtype}|{tuple(frame.shape)}|".encode())
    digest.update(memoryview(pixels).cast("B"))
    return digest.hexdigest()


def weight_stamp(path: str | os.PathLike) -> str:
    """A weight file as it enters a key: its size and the SHA-256 of its whole content
    (:func:`metrics.digest.weight_digest`, read once per process), so that a file replaced in place
    with its mtime kept still changes the key in the next run, and the same file at another path (a
    copied cache) keeps it. (A frame file's content stamp is :func:`benchmark.stamps.file_stamp`.)"""
    size, digest = weight_digest(path)
    return f"{size}:{digest}"


def entry_key(kind: str, options: dict[str, Any], frame_keys: Sequence[str]) -> str:
    """The file name (without suffix) of one stored value."""
    text = json.dumps([kind, options, list(frame_keys)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class TruthStore:
    """Computes ground-truth values once; with ``folder``, keeps them there (see the module docstring).

    ``exclude``: kinds never written to the folder (e.g. ``{"flow"}``: dense flows take 8 bytes
    per pixel, so at 512x512 two flows per frame are 4 MB); they are computed in every call.
    ``counts`` records, per kind, how many values were ``computed`` and how many ``loaded``.
    """

    def __init__(self, folder: str | os.PathLike | None = None, exclude: Iterable[str] = ()):
        self.folder = None if folder is None else Path(folder)
        self.exclude = frozenset(exclude)
        self.counts: dict[str, Counter] = {}
        self._cleaned: set[Path] = set()

    def __repr__(self) -> str:
        return f"TruthStore(folder={self.folder}, exclude={sorted(self.exclude)})"

    def get(self, kind: str, options: dict[str, Any], keys: Sequence[Sequence[str]],
            compute: Callable[[list[int]], list[Values]]) -> list[Values]:
        """The values of ``kind`` for each entry of ``keys`` (the frame keys each value comes from).

        ``compute(indices)`` computes the values of the entries at ``indices`` (in that order); it
        is called once, with only the entries that are not stored, or not at all.
        """
        counts = self.counts.setdefault(kind, Counter())
        values: list[Values | None] = [None] * len(keys)
        paths: list[Path | None] = [None] * len(keys)
        if self.folder is not None and kind not in self.exclude:
            for i, frame_keys in enumerate(keys):
                paths[i] = self.folder / kind / f"{entry_key(kind, options, frame_keys)}.npz"
                values[i] = _load(paths[i])
        todo = [i for i, value in enumerate(values) if value is None]
        if len(keys) > len(todo):
            counts["loaded"] += len(keys) - len(todo)
        if todo:
            computed = compute(todo)
            if len(computed) != len(todo):
                raise RuntimeError(f"{kind}: computed {len(computed)} values for {len(todo)} entries")
            counts["computed"] += len(todo)
            for i, value in zip(todo, computed):
                values[i] = value
                if paths[i] is not None:
                    self._save(paths[i], value)
        return values  # type: ignore[return-value]

    def _save(self, path: Path, values: Values) -> None:
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        if folder not in self._cleaned:
            _remove_stale_temporaries(folder)
            self._cleaned.add(folder)
        buffer = io.BytesIO()
        np.savez(buffer, **values)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(buffer.getbuffer())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _load(path: Path) -> Values | None:
    """A stored entry, or None when it is absent or unreadable (then it is computed again)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files a killed writer left behind (old enough that no live writer still owns them)."""
    limit = time.time() - STALE_TEMPORARY_SECONDS
    for entry in folder.glob(".*.tmp"):
        try:
            if entry.stat().st_mtime < limit:
                entry.unlink()
        except FileNotFoundError:
            pass
