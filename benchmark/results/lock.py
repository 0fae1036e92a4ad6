"""One run per output folder: an advisory lock file held for as long as a run uses the folder.

Convention (POSIX ``flock``, so the operating system releases a lock whenever its process ends,
even by SIGKILL, and a stale lock of a dead process never blocks a later run):
- a whole run (``cabench run``, ``eval``, ``demo``, ``--merge-only``) holds ``.cabench/lock``
  exclusively;
- one shard of a run (``--shard I/N``, or process I of N launched by accelerate / torchrun)
  holds ``.cabench/lock`` shared and ``.cabench/lock-I-of-N`` exclusively, so the shards of one
  run work side by side while a second whole run, or a second copy of the same shard, is refused.
Each holder writes its pid, host and start time into the file it holds exclusively; a refused
run names them (:class:`RunLockedError`, exit status 2).
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
from pathlib import Path

from benchmark.results.files import write_failure
from metrics.errors import CabenchError


class RunLockedError(CabenchError):
    """The run folder is in use by another cabench process (named in the message)."""


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def _describe(info: dict) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}"


class RunLock:
    """The lock of a run folder (see the module docstring); use as a context manager."""

    def __init__(self, folder: Path, out: Path, shard: tuple[int, int] | None = None):
        self.folder = folder
        self.out = out
        self.shard = shard if shard is not None and shard[1] > 1 else None
        self._handles: list[int] = []

    @property
    def exclusive(self) -> bool:
        """Whether this lock keeps every other run out (a whole run), not only other copies of its shard."""
        return self.shard is None

    def _path(self) -> Path:
        return self.folder / "lock"

    def _shard_path(self) -> Path:
        index, count = self.shard
        return self.folder / f"lock-{index}-of-{count}"

    def acquire(self) -> RunLock:
        import fcntl

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            main = os.open(self._path(), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as error:
            raise write_failure(self._path(), error) from None
        self._handles.append(main)
        try:
            fcntl.flock(main, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            if self.exclusive:
                self._write(main)
                return self
            shard = os.open(self._shard_path(), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            self._handles.append(shard)
            fcntl.flock(shard, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._write(shard)
        except BlockingIOError:
            self.release()
            raise RunLockedError(f"{self.out}: another cabench run is using this folder ({self.holders()}); "
                                 "wait for it to end or choose another output folder") from None
        except OSError as error:
            self.release()
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RunLockedError(f"{self.out}: another cabench run is using this folder ({self.holders()})") from None
            raise write_failure(self._path(), error) from None
        return self

    def _write(self, handle: int) -> None:
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps(_holder()).encode(), 0)

    def holders(self) -> str:
        """The processes holding this folder's locks now, as text."""
        import fcntl

        found = []
        for path in sorted(self.folder.glob("lock*")):
            try:
                handle = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                # A whole run holds "lock" exclusively, a shard its own file: where even a shared lock
                # is refused (or an exclusive one on a shard file), the file's holder is current.
                fcntl.flock(handle, (fcntl.LOCK_SH if path.name == "lock" else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except OSError:
                try:
                    info = json.loads(path.read_text() or "{}")
                except (OSError, ValueError):
                    info = {}
                shard = "" if path.name == "lock" else f"shard {path.name[5:].replace('-of-', '/')}: "
                found.append(shard + _describe(info))
            finally:
                os.close(handle)
        return "; ".join(found) or "its shards, which hold the folder shared"

    def release(self) -> None:
        while self._handles:
            os.close(self._handles.pop())  # closing the descriptor releases its flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
