"""Offline-first lookup of the weight files the harness can use.

Convention: a weight file is found, in order, at an explicit path, in the folder named by the
``CABENCH_WEIGHTS`` environment variable, and in the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``). Nothing is ever
downloaded; a missing file raises :class:`WeightsMissingError` naming the file and the folders
searched, so a metric can be reported as missing and the run can go on.

The first file found is the one used: a file that is there but unusable (a folder, unreadable,
corrupt or truncated, wrong keys or tensor shapes) raises :class:`WeightsUnusableError` rather
than falling back to a file further down the search, so that what the user put in place is what
the numbers come from, or the reason they are missing. Each :class:`WeightFile` may carry a
``check`` that loads the file and compares its keys and shapes with the model;
:func:`usable_weight` runs it once per (file, size, modification time), so a metric is checked
when its availability is, not per batch.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from metrics.errors import WeightsMissingError, WeightsUnusableError


@dataclass(frozen=True)
class WeightFile:
    """One weight file the harness knows: its file name, what uses it and where it comes from."""

    key: str
    filename: str
    used_by: str
    source: str
    alternatives: tuple[str, ...] = field(default=())
    folders: tuple[str, ...] = field(default=())  # searched last: e.g. a package that ships the file
    # check(path) raises WeightsUnusableError when the file cannot serve the model (see usable_weight)
    check: Callable[[Path], None] | None = field(default=None, compare=False, repr=False)


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
        if p.exists():
            raise WeightsUnusableError(p, f"is a folder, not a weight file ({weight.used_by})")
        raise WeightsMissingError(f"weight file {p} ({weight.used_by}) does not exist")
    names = (weight.filename, *weight.alternatives)
    folders = [*search_dirs(), *(Path(f) for f in weight.folders)]
    for folder in folders:
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
            if candidate.exists():
                raise WeightsUnusableError(candidate, f"is a folder, not a weight file ({weight.used_by})")
    where = ", ".join(str(d) for d in folders)
    put = "put it in one of them" if len(folders) > 1 else "put it there"
    raise WeightsMissingError(
        f"{weight.filename} ({weight.used_by}) not found in {where}; "
        f"{put} or set CABENCH_WEIGHTS to its folder (source: {weight.source})"
    )


def usable_weight(key: str, path: str | os.PathLike | None = None) -> Path:
    """:func:`find_weight`, then the weight's ``check`` (once per file, size and modification time).

    Raises:
        WeightsMissingError: no file (see :func:`find_weight`).
        WeightsUnusableError: a file is there but cannot be used; the message names it and says why.
    """
    weight = _KNOWN[key]
    found = find_weight(key, path)
    if weight.check is None:
        return found
    try:
        stat = found.stat()
    except OSError as error:
        raise WeightsUnusableError(found, f"cannot be read ({error.strerror or error})") from None
    reason = _check_once(key, str(found.resolve()), stat.st_size, stat.st_mtime_ns)
    if reason is not None:
        raise WeightsUnusableError(found, f"unusable as {weight.used_by} weights: {reason}")
    return found


@lru_cache(maxsize=64)
def _check_once(key: str, path: str, size: int, mtime_ns: int) -> str | None:
    """The reason the file cannot be used, or None; size and mtime are part of the cache key so
    that a file replaced in place is checked again."""
    try:
        _KNOWN[key].check(Path(path))
    except WeightsUnusableError as error:
        return error.reason
    return None


def weight_status() -> list[dict[str, str]]:
    """One row per known weight: key, file, ``status`` (found, unusable or missing), where it was
    found, why it is unusable, and the folders searched."""
    rows = []
    for weight in known_weights():
        status, found, reason = "found", "", ""
        try:
            found = str(usable_weight(weight.key))
        except WeightsUnusableError as error:
            status, found, reason = "unusable", str(error.path), error.reason
        except WeightsMissingError:
            status = "missing"
        rows.append(
            {
                "key": weight.key,
                "file": weight.filename,
                "used_by": weight.used_by,
                "status": status,
                "found": found or "missing",
                "reason": reason,
                "searched": ", ".join(str(d) for d in search_dirs()),
                "source": weight.source,
            }
        )
    return rows


# ---------------------------------------------------------------------------- checking a file


def load_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load`` of a weight file (tensors only, on the CPU), with one-line errors.

    Files in PyTorch's zip format are memory-mapped, so checking one reads its index and not its
    tensors; older (pickle-stream) files are read in full.

    Raises:
        WeightsUnusableError: the file cannot be read, is corrupt or truncated, or holds objects
            other than tensors and plain containers.
    """
    import pickle

    import torch

    path = Path(path)
    try:
        with open(path, "rb") as file:
            file.read(1)
    except OSError as error:  # permission, a folder, a vanished file
        raise WeightsUnusableError(path, f"cannot be read ({error.strerror or error})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, ImportError, AttributeError) as error:
        raise WeightsUnusableError(path, f"the file is corrupt or truncated, or not a PyTorch checkpoint "
                                         f"({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    """The informative line of torch.load's (often many-line) message."""
    text = str(error).strip()
    if "WeightsUnpickler error:" in text:  # weights-only unpickler: the reason follows this marker
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    line = text.splitlines()[0].strip() if text else ""
    line = line.split(". ", 1)[0]  # torch's miniz message goes on with advice after its first sentence
    detail = line if len(line) <= 160 else line[:157] + "..."
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def state_dict_of(checkpoint: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``checkpoint`` as a state dict, checked to map names to tensors."""
    import torch

    if not isinstance(checkpoint, Mapping) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        kind = type(checkpoint).__name__
        raise WeightsUnusableError(path, f"the file holds a {kind}, not a state dict of tensors")
    return dict(checkpoint)


def compare_state(state: Mapping[str, Any], expected: Mapping[str, Any], path: str | os.PathLike, model: str,
                  allow_extra: bool = False) -> None:
    """Raise :class:`WeightsUnusableError` unless ``state`` has every key of ``expected`` with the same
    tensor shape (and, unless ``allow_extra``, no other key). ``model`` names what it should fit."""
    missing = sorted(set(expected) - set(state))
    unexpected = [] if allow_extra else sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [f"{label} {len(keys)}: {_short(keys)}" for label, keys in (("missing", missing), ("unexpected", unexpected))
                 if keys]
        raise WeightsUnusableError(path, f"the file has the wrong keys for {model} ({'; '.join(parts)})")
    wrong = [(k, tuple(state[k].shape), tuple(expected[k].shape)) for k in expected
             if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        shown = "; ".join(f"{k}: {found} in the file, {wanted} expected" for k, found, wanted in wrong[:3])
        more = f"; and {len(wrong) - 3} more" if len(wrong) > 3 else ""
        raise WeightsUnusableError(path, f"the file has tensors of the wrong shape for {model} ({shown}{more})")


def _short(keys: list[str], limit: int = 4) -> str:
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def meta_state(build: Callable[[], Any]) -> dict[str, Any]:
    """The state dict (names and shapes) of the module ``build()`` makes, built on the meta device:
    no memory is allocated and no random initialisation runs."""
    import torch

    with torch.device("meta"):
        return build().state_dict()



def checked_state(path: str | os.PathLike, build: Callable[[], Any], model: str, entry: str | None = None,
                  convert: Callable[[Any], Any] | None = None, allow_extra: bool = False) -> dict[str, Any]:
    """The state dict in weight file ``path``, checked to fit the module ``build()`` makes.

    Loads the file (:func:`load_checkpoint`), takes its ``entry`` when given, applies ``convert``
    (e.g. another repository's key names to ours), and compares names and shapes with the module
    (built on the meta device, :func:`meta_state`); with ``allow_extra``, keys the module does not
    have are allowed and dropped. ``model`` names the module in the message.

    Raises:
        WeightsUnusableError: one line naming the file and what does not fit.
    """
    checkpoint = load_checkpoint(path)
    if entry is not None:
        if not isinstance(checkpoint, Mapping) or entry not in checkpoint:
            raise WeightsUnusableError(path, f"the file has no {entry!r} entry")
        checkpoint = checkpoint[entry]
    state = state_dict_of(convert(checkpoint) if convert is not None else checkpoint, path)
    expected = meta_state(build)
    compare_state(state, expected, path, model, allow_extra=allow_extra)
    return {key: state[key] for key in expected}
