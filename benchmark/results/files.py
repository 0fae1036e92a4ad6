"""Atomic file writes: a result file is either the old one or the complete new one, never half.

Convention: write to a temporary file ``.<name>.<random>.tmp`` in the same folder, flush and
fsync it, then ``os.replace`` it over the target (atomic on POSIX and Windows within one file
system). A process killed between the two leaves the temporary file behind; a run that holds its
folder alone removes such leftovers when it starts (:meth:`RunFolder.clean_temporaries`).
A write that fails (disk full, read-only folder, a file where a folder should be) is a
:class:`ResultsWriteError` naming the file; files written before it are untouched.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pandas as pd

from metrics.errors import CabenchError

# The names of the temporary files atomic writes make (mkstemp's random part is 8 characters).
TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


class ResultsWriteError(CabenchError):
    """A result file could not be written; the message names it and the operating system's reason."""


def write_failure(path: str | os.PathLike, error: OSError) -> ResultsWriteError:
    reason = error.strerror or str(error)
    return ResultsWriteError(f"{path}: cannot write ({reason}); the results stored before it are kept")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise write_failure(path, error) from None
    except BaseException:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_csv(path: str | os.PathLike, what: str = "CSV") -> pd.DataFrame:
    """Read a CSV; a missing, empty or malformed file is an InputError naming it."""
    from metrics.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"{path}: cannot read the {what} ({error})") from None


def atomic_write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False, lineterminator="\n"))
