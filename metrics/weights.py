"""Finding, checking and verifying the weight files the harness can use (offline: nothing downloads here).

Convention: a weight file is found, in order, at an explicit path, in the folder named by the
``CABENCH_WEIGHTS`` environment variable, in the torch hub cache (``$TORCH_HOME/hub/checkpoints``,
default ``~/.cache/torch/hub/checkpoints``), then in the folders its manifest entry names (e.g. the
``face_recognition_models`` package). Nothing is downloaded implicitly, so a run's numbers never
depend on whether the network was up: a missing file raises :class:`WeightsMissingError` naming the
file, the folders searched and the command that fetches it (``cabench weights --download
lpips-alex``), so a metric can be reported as missing and the run can go on.

The files are described by the manifest (:mod:`metrics.manifest`: name, size, SHA-256, source,
licence). The modules that load a file register its ``check`` (loads it and compares keys and
shapes with the model) with :func:`from_manifest`; :func:`usable_weight` runs the check once per
(file, size, modification time). The first file found is the one used: a file that is there but
unusable (a folder, unreadable, corrupt or truncated, wrong keys or shapes, *any* exception its
loader raises) raises :class:`WeightsUnusableError` rather than falling back to a file further down
the search, so that what the user put in place is what the numbers come from, or the reason they
are missing.

For other code (the metrics of later issues), the one call is :func:`resolve`: ``resolve(name,
explicit_path=None)`` gives a :class:`ResolvedWeight` with the path, its SHA-256, whether that is
the manifest's (``verified``) and, when it cannot be used, the reason (naming the fetch command).
A file whose SHA-256 differs from the manifest's (an explicit path, a retrained or random file, an
alternative name) is used but marked unverified; its own SHA-256 is what the outputs record
(:meth:`ResolvedWeight.record`).
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from metrics.digest import weight_digest
from metrics.errors import WeightsMissingError, WeightsUnusableError
from metrics.manifest import ManifestEntry, has_entry, hub_snapshot, manifest, manifest_entry


@dataclass(frozen=True)
class WeightFile:
    """One weight file the harness knows: its file name, what uses it and where it comes from.

    ``key`` is the manifest name where the file has a manifest entry (then :func:`from_manifest`
    fills the rest from it); a file registered under another key works the same, unverified.
    """

    key: str
    filename: str
    used_by: str
    source: str
    alternatives: tuple[str, ...] = field(default=())
    folders: tuple[str, ...] = field(default=())  # searched last: e.g. a package that ships the file
    # check(path) raises WeightsUnusableError when the file cannot serve the model (see usable_weight)
    check: Callable[[Path], None] | None = field(default=None, compare=False, repr=False)

    @property
    def entry(self) -> ManifestEntry | None:
        """Its manifest entry, if it has one."""
        return manifest_entry(self.key) if has_entry(self.key) else None


_KNOWN: dict[str, WeightFile] = {}

# Keys of the first version of this module, before the manifest named the files.
ALIASES = {"alexnet": "lpips-alex", "vgg16": "lpips-vgg", "raft_large": "raft-large", "raft_small": "raft-small",
           "dlib_landmarks68": "dlib-landmarks68", "dlib_face_recognition": "dlib-face-recognition",
           "resnet18_imagenet": "resnet18-imagenet"}


def register_weight(weight: WeightFile) -> WeightFile:
    """Add a weight file to the table that `cabench weights` lists (replacing one of the same key)."""
    _KNOWN[weight.key] = weight
    return weight


def from_manifest(name: str, check: Callable[[Path], None] | None = None) -> WeightFile:
    """Register manifest entry ``name`` with the ``check`` that loads it; returns its :class:`WeightFile`.

    This is how a metric module declares the file it loads: ``RAFT = from_manifest("raft-large",
    check=lambda path: raft_state(path, "raft_large"))``.
    """
    return register_weight(_weight_of(manifest_entry(name), check))


def _weight_of(entry: ManifestEntry, check: Callable[[Path], None] | None = None) -> WeightFile:
    source = " or ".join(entry.urls) or (entry.archive.urls[0] if entry.archive else "") or entry.steps
    return WeightFile(key=entry.name, filename=entry.file, used_by=entry.used_by, source=source,
                      alternatives=entry.alternatives, folders=entry.folders, check=check)


def known_weights() -> list[WeightFile]:
    """Every weight file: the manifest's files (with the checks registered for them) in its order, then
    files registered without a manifest entry."""
    listed = [get_weight(entry.name) for entry in manifest() if entry.kind == "file"]
    return listed + [w for key, w in _KNOWN.items() if not has_entry(key)]


def get_weight(key: str) -> WeightFile:
    """The registered :class:`WeightFile` of ``key`` (a manifest name or an older key), else the
    manifest entry's file without a check.

    Raises:
        KeyError: neither registered nor in the manifest.
    """
    key = ALIASES.get(key, key)
    if key not in _KNOWN and has_entry(key):
        from metrics import load_metrics

        load_metrics()  # the metric modules register the checks of the files they load
    if key in _KNOWN:
        return _KNOWN[key]
    if has_entry(key) and manifest_entry(key).kind == "file":
        return _weight_of(manifest_entry(key))
    raise KeyError(key)


def torch_hub_checkpoints() -> Path:
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        return Path(torch_home) / "hub" / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) / "torch" if xdg else Path.home() / ".cache" / "torch"
    return base / "hub" / "checkpoints"


def search_dirs() -> list[Path]:
    """The folders searched for a weight file, in order (before an entry's own ``folders``)."""
    dirs = []
    env = os.environ.get("CABENCH_WEIGHTS")
    if env:
        dirs.append(Path(env))
    dirs.append(torch_hub_checkpoints())
    return dirs


def download_dir() -> Path:
    """Where ``cabench weights --download`` puts files: ``$CABENCH_WEIGHTS``, else the torch hub cache."""
    return search_dirs()[0]


def offline() -> bool:
    """Whether the network must not be touched: ``CABENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` set to a true value."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("CABENCH_OFFLINE", "HF_HUB_OFFLINE"))


def _package_folder(spec: str) -> Path | None:
    """``package/sub/folder`` inside an installed package, found without importing it (None if absent)."""
    if os.sep in spec and Path(spec).is_absolute():
        return Path(spec)
    package, _, rest = spec.partition("/")
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / rest


def _folders(weight: WeightFile) -> list[Path]:
    extra = [_package_folder(f) for f in weight.folders]
    return [*search_dirs(), *(f for f in extra if f is not None)]


def _hint(weight: WeightFile) -> str:
    entry = weight.entry
    return entry.how_to_get() if entry is not None else f"source: {weight.source}"


def find_weight(key: str, path: str | os.PathLike | None = None) -> Path:
    """Return the path of weight ``key``; ``path`` (a file) overrides the search.

    Raises:
        WeightsMissingError: naming the file, every folder searched and how to get it.
    """
    weight = get_weight(key)
    if path is not None:
        p = Path(path)
        if p.is_file():
            return p
        if p.exists():
            raise WeightsUnusableError(p, f"is a folder, not a weight file ({weight.used_by})")
        raise WeightsMissingError(f"weight file {p} ({weight.used_by}) does not exist")
    names = (weight.filename, *weight.alternatives)
    folders = _folders(weight)
    for folder in folders:
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
            if candidate.exists():
                raise WeightsUnusableError(candidate, f"is a folder, not a weight file ({weight.used_by})")
    where = ", ".join(str(d) for d in folders)
    raise WeightsMissingError(f"{weight.filename} ({weight.used_by}) not found in {where}; {_hint(weight)}")


def usable_weight(key: str, path: str | os.PathLike | None = None) -> Path:
    """:func:`find_weight`, then the weight's ``check`` (once per file, size and modification time).

    Raises:
        WeightsMissingError: no file (see :func:`find_weight`).
        WeightsUnusableError: a file is there but cannot be used; the message names it and says why.
    """
    weight = get_weight(key)
    found = find_weight(key, path)
    if weight.check is None:
        return found
    try:
        stat = found.stat()
    except OSError as error:
        raise WeightsUnusableError(found, f"cannot be read ({error.strerror or error})") from None
    reason = _check_once(weight.key, str(found.resolve()), stat.st_size, stat.st_mtime_ns)
    if reason is not None:
        raise WeightsUnusableError(found, f"unusable as {weight.used_by} weights: {reason}")
    return found


@lru_cache(maxsize=64)
def _check_once(key: str, path: str, size: int, mtime_ns: int) -> str | None:
    """The reason the file cannot be used, or None; size and mtime are part of the cache key so
    that a file replaced in place is checked again. Any exception of the check is a reason: a
    loader meeting a file it cannot read must never crash the command that asked."""
    try:
        get_weight(key).check(Path(path))
    except WeightsUnusableError as error:
        return error.reason
    except Exception as error:  # noqa: BLE001 - see the docstring
        return f"the file cannot be loaded ({_first_line(error)})"
    return None


# ---------------------------------------------------------------------------- hashes and verification


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the file at ``path``, computed once per (file, size, modification time)."""
    return weight_digest(path)[1]


@dataclass(frozen=True)
class ResolvedWeight:
    """What :func:`resolve` found for one weight.

    ``status``: ``found`` (the manifest's file: size and SHA-256 match), ``unverified`` (a file
    that loads but is not the manifest's: another hash, an alternative name, an explicit path, or
    an entry with no published hash), ``mismatch`` (under the manifest's own file name in a search
    folder, but with another SHA-256: also usable, never treated as the published file),
    ``unusable`` or ``missing`` (``reason`` says why and how to get it; ``path`` is None when missing).
    """

    name: str
    status: str
    path: Path | None = None
    sha256: str | None = None
    expected_sha256: str | None = None
    reason: str | None = None
    revision: str | None = None  # a hub entry's pinned commit (its files are addressed by it, not hashed here)

    @property
    def usable(self) -> bool:
        return self.status in ("found", "unverified", "mismatch")

    @property
    def verified(self) -> bool:
        return self.status == "found"

    def record(self) -> dict[str, Any]:
        """What the outputs record beside a number this file produced (metadata.json, the report, the
        stored part's fingerprint): the weight's name, the file's name, its SHA-256, whether verified."""
        record = {"name": self.name, "file": self.path.name if self.path else None, "sha256": self.sha256,
                  "verified": self.verified}
        return {**record, "revision": self.revision} if self.revision else record


def resolve(name: str, explicit_path: str | os.PathLike | None = None) -> ResolvedWeight:
    """Find weight ``name`` (a manifest name, e.g. ``"lpips-alex"``), check that it loads (when a
    check is registered) and compare its SHA-256 with the manifest's. Never raises for a missing or
    unusable file: the result says so (``reason`` names the file and the fetch command).
    ``explicit_path`` (a user's ``--lpips-weights FILE``) overrides the search; a file there whose
    hash differs from the manifest's is ``unverified``. A hub entry (``"sd15"``) is ``found`` when its
    pinned commit is in the Hugging Face cache (``path``: the snapshot folder; ``revision``: the commit).

    Raises:
        CabenchError: ``name`` is neither in the manifest nor registered (the message lists the names).
    """
    name = ALIASES.get(name, name)
    if has_entry(name) and manifest_entry(name).kind == "hub":
        return _resolve_hub(manifest_entry(name))
    try:
        weight = get_weight(name)
    except KeyError:
        manifest_entry(name)  # raises the one-line error that lists the known names
        raise
    entry = weight.entry
    try:
        path = usable_weight(name, explicit_path)
    except WeightsUnusableError as error:
        return ResolvedWeight(weight.key, "unusable", Path(error.path), reason=str(error),
                              expected_sha256=entry.sha256 if entry else None)
    except WeightsMissingError as error:
        return ResolvedWeight(weight.key, "missing", reason=str(error), expected_sha256=entry.sha256 if entry else None)
    try:
        sha = file_sha256(path)
    except OSError as error:
        return ResolvedWeight(weight.key, "unusable", path, reason=f"{path}: cannot be read ({error.strerror or error})")
    expected = entry.sha256 if entry else None
    if expected is not None and sha == expected:
        status = "found"
    elif expected is not None and explicit_path is None and path.name == weight.filename:
        status = "mismatch"
    else:
        status = "unverified"
    return ResolvedWeight(weight.key, status, path, sha, expected)


def _resolve_hub(entry: ManifestEntry) -> ResolvedWeight:
    snapshot = hub_snapshot(entry)
    if snapshot is None:
        return ResolvedWeight(entry.name, "missing", reason=f"{entry.repo}@{entry.revision} is not in the Hugging Face "
                                                            f"cache; {entry.how_to_get()}", revision=entry.revision)
    return ResolvedWeight(entry.name, "found", snapshot, revision=entry.revision)


def weight_records(weights: Mapping[str, str | os.PathLike | None]) -> list[dict[str, Any]]:
    """:meth:`ResolvedWeight.record` of each usable weight of ``{name: explicit path or None}`` (what a
    metric's :attr:`~metrics.registry.MetricSpec.weights` gives), in order; weights that are not
    usable are left out (their metric is reported missing anyway)."""
    records = []
    for name, path in weights.items():
        resolved = resolve(name, path)
        if resolved.usable:
            records.append(resolved.record())
    return records


def weight_status() -> list[dict[str, str]]:
    """One row per known weight file: key, file, ``status`` (found, unverified, mismatch, unusable or
    missing), where it was found, its SHA-256 and the manifest's, why it is unusable or missing,
    the folders searched, its source and licence."""
    rows = []
    for weight in known_weights():
        resolved = resolve(weight.key)
        entry = weight.entry
        rows.append({
            "key": weight.key, "file": weight.filename, "used_by": weight.used_by, "status": resolved.status,
            "found": str(resolved.path) if resolved.path else "missing", "reason": resolved.reason or "",
            "sha256": resolved.sha256 or "", "expected_sha256": resolved.expected_sha256 or "",
            "searched": ", ".join(str(d) for d in _folders(weight)), "source": weight.source,
            "licence": entry.licence if entry else "", "how": _hint(weight),
        })
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
    import torch

    path = Path(path)
    try:
        with open(path, "rb") as file:
            file.read(1)
    except OSError as error:  # permission, a folder, a vanished file
        raise WeightsUnusableError(path, f"cannot be read ({error.strerror or error})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # noqa: BLE001 - any exception of the unpickler or zip reader (KeyError, struct.error...)
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
