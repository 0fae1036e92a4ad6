"""Running a method's own program: a subprocess with a timeout, arguments as a list, no shell.

Paths with spaces or quotes are passed through untouched because nothing is parsed by a shell.
A program that is absent, times out or exits non-zero is a :class:`CabenchError` that names the
program, the status and the last lines it printed on stderr.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from metrics.errors import CabenchError

STDERR_LINES = 3


def find_program(program: str | os.PathLike, what: str) -> str:
    """An executable by path or on PATH; a clear error when it is absent."""
    text = str(program)
    if os.sep in text or text.startswith("."):
        if not Path(text).is_file():
            raise CabenchError(f"{what}: program {text} not found")
        return text
    found = shutil.which(text)
    if found is None:
        raise CabenchError(f"{what}: program {text!r} is not on PATH")
    return found


def run_program(args: Sequence[str | os.PathLike], what: str, timeout: float, cwd: str | os.PathLike | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``args`` (a list: program then arguments) and return the finished process."""
    argv = [str(a) for a in args]
    argv[0] = find_program(argv[0], what)
    if cwd is not None and not Path(cwd).is_dir():
        raise CabenchError(f"{what}: working folder {cwd} does not exist")
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CabenchError(f"{what}: {Path(argv[0]).name} did not finish within {timeout:g} s") from None
    except OSError as error:
        raise CabenchError(f"{what}: cannot run {argv[0]} ({error.strerror or error})") from None
    if done.returncode != 0:
        tail = " | ".join(line for line in done.stderr.strip().splitlines()[-STDERR_LINES:] if line.strip())
        raise CabenchError(f"{what}: {shlex.join(argv[:2])} ... exited with status {done.returncode}"
                           + (f": {tail}" if tail else ""))
    return done
