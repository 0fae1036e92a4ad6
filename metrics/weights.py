"""Offline-first lookup of the weight files the harness can use.

Convention: a weight file is found, in order, at an explicit path, in the folder named by the
``CABENCH_WEIGHTS`` environment variable, and in the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``). Nothing is ever
downloaded; a missing file raises :class:`WeightsMissingError` naming the file and the folders
searched, so a metric can be reported as missing and the run can go on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from metrics.errors import WeightsMissingError


@dataclass(frozen=True)
class WeightFile:
    """One weight file the harness knows: its file name, what uses it and where it comes from."""

    key: str
    filename: str
    used_by: str
    source: str
    alternatives: tuple[str, ...] = field(default=())
    folders: tuple[str, ...] = field(default=())  # searched last: e.g. a package that ships the file


_KNOWN: dict[str, WeightFile] = {}


def register_weight(weight: WeightFile) -> WeightFile:
    """Add a weight file to the table that `cabench weights` lists."""
    _KNOWN[weight.key] = weight
    return weight


def known_weights() -> list[WeightFile]:
    return list(_KNOWN.values())


def get_weight(key: str) -> WeightFile:
    return _KNOWN[key]


def torch_hub_checkpoints() -> Path:
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        return Path(torch_home) / "hub" / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) / "torch" if xdg else Path.home() / ".cache" / "torch"
    return base / "hub" / "checkpoints"


def search_dirs() -> list[Path]:
    """The folders searched for a weight file, in order."""
    dirs = []
    env = os.environ.get("CABENCH_WEIGHTS")
    if env:
        dirs.append(Path(env))
    dirs.append(torch_hub_checkpoints())
    return dirs


def find_weight(key: str, path: str | os.PathLike | None = None) -> Path:
    """Return the path of weight ``key``; ``path`` (a file) overrides the search.

    Raises:
        WeightsMissingError: naming the file and every folder searched.
    """
    weight = _KNOWN[key]
    if path is not None:
        p = Path(path)
        if p.is_file():
            return p
        raise WeightsMissingError(f"weight file {p} ({weight.used_by}) does not exist")
    names = (weight.filename, *weight.alternatives)
    folders = [*search_dirs(), *(Path(f) for f in weight.folders)]
    for folder in folders:
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    where = ", ".join(str(d) for d in folders)
    raise WeightsMissingError(
        f"{weight.filename} ({weight.used_by}) not found in {where}; "
        f"put it in one of them or set CABENCH_WEIGHTS (source: {weight.source})"
    )


def weight_status() -> list[dict[str, str]]:
    """One row per known weight: key, file, where it was found (or 'missing'), the folders searched."""
    rows = []
    for weight in known_weights():
        try:
            found = str(find_weight(weight.key))
        except WeightsMissingError:
            found = "missing"
        rows.append(
            {
                "key": weight.key,
                "file": weight.filename,
                "used_by": weight.used_by,
                "found": found,
                "searched": ", ".join(str(d) for d in search_dirs()),
                "source": weight.source,
            }
        )
    return rows
