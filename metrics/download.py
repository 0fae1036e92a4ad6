"""Verified, atomic downloads of the manifest's weight files (``cabench weights --download``).

Only an explicit command downloads: nothing in a run calls this module, so a run's numbers never
depend on the network. A file entry is fetched with ``torch.hub.download_url_to_file`` (urllib,
with torch hub's progress bar) into a hidden temporary file beside its destination; its size and
SHA-256 are checked against the manifest, and only then is it renamed (``os.replace``, atomic on
one file system) to its final name. A wrong hash, a short transfer, a server error, an interrupted
or killed download leave nothing under the final name; each source URL is tried in turn, and the
error names every URL and what went wrong. A file that is a member of an archive (insightface's
``buffalo_l.zip``) is extracted from the archive after the archive's own hash is checked, and
checked in turn. Hugging Face repositories (``kind = "hub"``) are fetched with ``huggingface_hub``
at the manifest's pinned commit into the Hub cache (``HF_HOME``), as diffusers expects.

Gates, checked before any socket is opened: offline mode (``CABENCH_OFFLINE=1`` or
``HF_HUB_OFFLINE=1``); an entry whose licence needs the user's acceptance needs its name in
``accepted`` (``--accept-licence NAME``); an entry with no download (DECA: registration) gives its
steps; an entry with no published SHA-256 is never downloaded (it could not be verified).
"""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from metrics.errors import CabenchError
from metrics.manifest import ManifestEntry, manifest_entry
from metrics.weights import download_dir, file_sha256, offline

STALE_S = 3600  # a temporary file untouched this long is a killed download's: removed by the next download


class WeightsDownloadError(CabenchError):
    """A weight file could not be downloaded (offline, licence not accepted, every source failed)."""


def check_allowed(entry: ManifestEntry, accepted: Collection[str] = ()) -> None:
    """Raise :class:`WeightsDownloadError` unless ``entry`` may be downloaded now (see the module docstring)."""
    if not entry.download:
        raise WeightsDownloadError(f"{entry.name}: no download is allowed ({entry.licence}); {entry.steps}")
    if entry.kind == "file" and not entry.sha256:
        raise WeightsDownloadError(f"{entry.name}: no SHA-256 is published for {entry.file}, so a download could not "
                                   f"be verified; get it from {' or '.join(entry.urls) or 'its authors'} and put it "
                                   f"in {download_dir()} (it will be used, marked unverified)")
    if entry.acceptance and entry.name not in accepted:
        raise WeightsDownloadError(f"{entry.name}: its licence needs your acceptance ({entry.licence}); read it, then "
                                   f"run `{entry.fetch_command}`")
    if offline():
        raise WeightsDownloadError(f"{entry.name}: offline mode (CABENCH_OFFLINE or HF_HUB_OFFLINE is set): nothing is "
                                   f"downloaded; unset it to run `{entry.fetch_command}`")


def download(name: str, accepted: Collection[str] = (), folder: str | os.PathLike | None = None,
             progress: bool = True) -> Path:
    """Fetch manifest entry ``name`` (verified, atomic) and return its path: the file in ``folder``
    (default: ``$CABENCH_WEIGHTS``, else the torch hub cache), or a hub entry's snapshot folder.
    A file already there with the manifest's hash is not fetched again (and needs no network).

    Raises:
        WeightsDownloadError: not allowed now (see :func:`check_allowed`), or every source failed
            (one line naming each URL and why; nothing is left under the final name).
    """
    entry = manifest_entry(name)
    folder = Path(folder) if folder is not None else download_dir()
    final = folder / entry.file
    if entry.kind == "file" and entry.sha256 and final.is_file() and verify_file(final, entry) is None:
        return final  # already there (no socket, no gate)
    check_allowed(entry, accepted)
    if entry.kind == "hub":
        return _download_hub(entry, progress)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder, entry.file)
    failures = []
    if entry.archive is not None:
        for url in entry.archive.urls:
            try:
                return _fetch_member(url, entry, final, progress)
            except _SourceFailed as failure:
                failures.append(f"{url}: {failure}")
    for url in entry.urls:
        try:
            return _fetch(url, entry, final, progress)
        except _SourceFailed as failure:
            failures.append(f"{url}: {failure}")
    raise WeightsDownloadError(f"{entry.name}: no source gave the pinned file ({'; '.join(failures)}); nothing was "
                               f"written to {final}")


def verify_file(path: str | os.PathLike, entry: ManifestEntry, size: int | None = None,
                sha256: str | None = None) -> str | None:
    """Why the file at ``path`` is not ``entry``'s published file (its size, then its SHA-256), or None.
    ``size`` / ``sha256`` override the entry's (an archive's)."""
    size = entry.size if size is None and sha256 is None else size
    sha256 = sha256 or entry.sha256
    stat = Path(path).stat()
    if size is not None and stat.st_size != size:
        return f"{stat.st_size} bytes, expected {size}"
    actual = file_sha256(path)
    if sha256 is not None and actual != sha256:
        return f"SHA-256 {actual}, expected {sha256}"
    return None


class _SourceFailed(Exception):
    """One URL did not give the pinned file (the reason is the message)."""


@contextmanager
def _temporaries(folder: Path, *names: str) -> Iterator[list[Path]]:
    """Hidden temporary files beside the destination (same file system: the final rename is atomic),
    removed on the way out whatever happens (a wrong hash, an error, Ctrl-C)."""
    paths = []
    try:
        for name in names:
            handle, path = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".download")
            os.close(handle)
            paths.append(Path(path))
        yield paths
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _require(path: Path, entry: ManifestEntry, what: str, size: int | None = None, sha256: str | None = None) -> None:
    problem = verify_file(path, entry, size=size, sha256=sha256)
    if problem:
        raise _SourceFailed(f"{what} is not the pinned file ({problem})")


def _get(url: str, into: Path, progress: bool) -> None:
    """``url``'s bytes into ``into`` (torch hub's downloader: urllib, a progress bar, its own temporary file)."""
    from torch.hub import download_url_to_file

    try:
        download_url_to_file(url, str(into), hash_prefix=None, progress=progress)
    except Exception as error:  # noqa: BLE001 - HTTPError, URLError, IncompleteRead, OSError...: this source failed
        raise _SourceFailed(_reason(error)) from None


def _fetch(url: str, entry: ManifestEntry, final: Path, progress: bool) -> Path:
    with _temporaries(final.parent, entry.file) as (temporary,):
        _get(url, temporary, progress)
        _require(temporary, entry, "the file received")
        os.replace(temporary, final)
    return final


def _fetch_member(url: str, entry: ManifestEntry, final: Path, progress: bool) -> Path:
    archive = entry.archive
    with _temporaries(final.parent, archive.file, entry.file) as (package, member):
        _get(url, package, progress)
        _require(package, entry, "the archive received", archive.size, archive.sha256)
        try:
            with zipfile.ZipFile(package) as zipped, zipped.open(_member_name(zipped, archive.member)) as source, \
                    open(member, "wb") as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
        except (zipfile.BadZipFile, KeyError, OSError) as error:
            raise _SourceFailed(f"cannot extract {archive.member} ({_reason(error)})") from None
        _require(member, entry, f"{archive.member} in the archive")
        os.replace(member, final)
    return final


def _member_name(zipped: zipfile.ZipFile, member: str) -> str:
    """The archive's path of ``member`` (archives put it at the top or in a folder)."""
    for name in zipped.namelist():
        if name == member or name.endswith("/" + member):
            return name
    raise KeyError(f"no {member} in the archive")


def _remove_stale(folder: Path, name: str) -> None:
    """Remove temporary files of earlier downloads of ``name`` that a killed process left behind."""
    now = time.time()
    for pattern in (f".{name}.*.download", f".{name}.*.download.*.partial"):
        for stale in folder.glob(pattern):
            try:
                if now - stale.stat().st_mtime > STALE_S:
                    stale.unlink()
            except OSError:
                pass


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ---------------------------------------------------------------------------- Hugging Face repositories


def _download_hub(entry: ManifestEntry, progress: bool) -> Path:
    """A pinned snapshot of a Hugging Face repository into the Hub cache (huggingface_hub's own
    atomic, resumable downloads)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise WeightsDownloadError(f"{entry.name}: huggingface_hub is not installed (pip install huggingface_hub)") from None
    try:
        path = snapshot_download(entry.repo, revision=entry.revision, allow_patterns=list(entry.allow) or None)
    except Exception as error:  # noqa: BLE001 - the Hub's errors (HTTP, offline, gated repository) are one line each
        raise WeightsDownloadError(f"{entry.name}: {entry.repo}@{entry.revision}: {_reason(error)}") from None
    return Path(path)
