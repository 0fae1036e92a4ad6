"""The weights manifest: every weight file the harness can use, as data (``weights_manifest.toml``).

Each entry pins a file by name, size and SHA-256, says where it comes from (URLs, or an archive
member, or a Hugging Face repository at a commit), under which licence, whether that licence must be
accepted before a download (``acceptance``), whether a download is allowed at all (``download``;
else ``steps`` says how to get it), and which metrics use it. Code asks for an entry by its short
stable name (``lpips-alex``, ``raft-large``, ``fid-inception-pytorch-fid``, ...): see
:func:`manifest_entry`, and :func:`metrics.weights.resolve` for finding and verifying the file.

Where a full SHA-256 is not published, ``sha256`` is None and ``hash_source`` says so: such a
file can be used, but it is never "verified", and the SHA-256 recorded beside its numbers is the
one of the file that was used.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from metrics.errors import CabenchError

MANIFEST_FILE = "weights_manifest.toml"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Archive:
    """A verified archive (e.g. insightface's ``buffalo_l.zip``) holding the entry's file as ``member``."""

    urls: tuple[str, ...]
    file: str
    sha256: str
    member: str
    size: int | None = None


@dataclass(frozen=True)
class ManifestEntry:
    """One weight file (``kind="file"``) or Hugging Face repository (``kind="hub"``) of the manifest."""

    name: str
    licence: str
    used_by: str
    metrics: tuple[str, ...]
    hash_source: str
    kind: str = "file"
    file: str = ""
    size: int | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    urls: tuple[str, ...] = ()
    archive: Archive | None = None
    acceptance: bool = False
    download: bool = True
    steps: str = ""
    alternatives: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    # kind = "hub"
    repo: str = ""
    revision: str = ""
    allow: tuple[str, ...] = ()
    marker: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def downloadable(self) -> bool:
        """Whether ``cabench weights --download`` may fetch it (a source, a pinned hash, and allowed)."""
        if not self.download:
            return False
        if self.kind == "hub":
            return bool(self.repo and self.revision)
        return bool(self.sha256 and (self.urls or self.archive))

    @property
    def fetch_command(self) -> str:
        """The command that fetches it (``--accept-licence`` included where the licence needs it)."""
        accept = f" --accept-licence {self.name}" if self.acceptance else ""
        return f"cabench weights --download {self.name}{accept}"

    def how_to_get(self) -> str:
        """One phrase: the command that fetches the file, or the steps where no download is allowed."""
        if self.downloadable:
            return f"run `{self.fetch_command}` (or put the file in $CABENCH_WEIGHTS or the torch hub cache)"
        if self.steps:
            return self.steps
        return "no download is available: put the file in $CABENCH_WEIGHTS or the torch hub cache"


def _entry(raw: dict[str, Any]) -> ManifestEntry:
    raw = dict(raw)
    archive = raw.pop("archive", None)
    known = {f for f in ManifestEntry.__dataclass_fields__ if f != "extra"}
    extra = {k: raw.pop(k) for k in list(raw) if k not in known}
    for key in ("metrics", "urls", "alternatives", "folders", "allow"):
        if key in raw:
            raw[key] = tuple(raw[key])
    entry = ManifestEntry(**raw, extra=extra,
                          archive=Archive(urls=tuple(archive["urls"]), file=archive["file"], sha256=archive["sha256"],
                                          member=archive["member"], size=archive.get("size")) if archive else None)
    _validate(entry)
    return entry


def _validate(entry: ManifestEntry) -> None:
    """A malformed entry is a bug in the package's data: say which and why."""
    problems = []
    if not _NAME.match(entry.name):
        problems.append("name must be lower-case letters, digits and dashes")
    if entry.kind not in ("file", "hub"):
        problems.append(f"unknown kind {entry.kind!r}")
    if entry.kind == "file" and not entry.file:
        problems.append("no file name")
    if entry.kind == "hub" and not (entry.repo and re.fullmatch(r"[0-9a-f]{40}", entry.revision)):
        problems.append("a hub entry needs repo and a 40-hex commit revision")
    for sha in (entry.sha256, entry.archive.sha256 if entry.archive else None):
        if sha is not None and not _SHA256.match(sha):
            problems.append(f"sha256 {sha!r} is not 64 lower-case hex digits")
    if entry.sha256 and entry.sha256_prefix and not entry.sha256.startswith(entry.sha256_prefix):
        problems.append("sha256 does not start with sha256_prefix")
    if entry.sha256_prefix and entry.sha256_prefix not in entry.file:
        problems.append("sha256_prefix is not in the file name")
    for url in (*entry.urls, *(entry.archive.urls if entry.archive else ())):
        parsed = urlparse(url)
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            problems.append(f"malformed URL {url!r}")
    if not entry.metrics:
        problems.append("no metrics named")
    if not entry.download and not entry.steps:
        problems.append("download = false needs steps")
    elif not entry.downloadable and not entry.steps:
        problems.append("no pinned SHA-256 or source to download from, and no steps")
    if problems:
        raise CabenchError(f"weights manifest entry {entry.name!r}: {'; '.join(problems)}")


@lru_cache(maxsize=1)
def manifest() -> tuple[ManifestEntry, ...]:
    """Every entry of the package's manifest, in its order."""
    text = resources.files("metrics").joinpath(MANIFEST_FILE).read_text(encoding="utf-8")
    entries = tuple(_entry(raw) for raw in tomllib.loads(text)["weight"])
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CabenchError(f"weights manifest: names listed twice: {', '.join(duplicates)}")
    return entries


def manifest_entry(name: str) -> ManifestEntry:
    """The entry named ``name``.

    Raises:
        CabenchError: no such entry (the message lists the names there are).
    """
    for entry in manifest():
        if entry.name == name:
            return entry
    raise CabenchError(f"no weight named {name!r} in the manifest; known: {', '.join(e.name for e in manifest())}")


def has_entry(name: str) -> bool:
    return any(entry.name == name for entry in manifest())


def hub_snapshot(entry: ManifestEntry) -> Path | None:
    """The cached snapshot folder of a hub entry at its pinned revision (None when not cached); touches
    no socket."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(entry.repo, entry.marker or "config.json", revision=entry.revision)
    return Path(found).parent if isinstance(found, str) else None
