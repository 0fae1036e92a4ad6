"""Running a method's own program: a subprocess with a timeout, arguments as a list, no shell.

Paths with spaces or quotes are passed through untouched because nothing is parsed by a shell.
A program that is absent, times out or exits non-zero is a :class:`CabenchError` that names the
program, the status and the last lines it printed on stderr.

Each program runs in a session (and process group) of its own, so that what it starts (a wrapper
script's children, a data loader's workers) can be ended with it: the whole group gets SIGTERM,
then SIGKILL after a grace period, when the program times out, when cabench itself is interrupted
(Ctrl-C, or SIGTERM, after which cabench's own handling of the signal goes on), and when the
program exits leaving processes behind. Its output goes to temporary files rather than pipes, so
a leftover child that keeps them open cannot hold cabench up; stdin is empty.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from metrics.errors import CabenchError

STDERR_LINES = 3
GRACE_SECONDS = 2.0


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
    """Run ``args`` (a list: program then arguments) in its own process group and return the finished
    process (see the module docstring)."""
    argv = [str(a) for a in args]
    argv[0] = find_program(argv[0], what)
    if cwd is not None and not Path(cwd).is_dir():
        raise CabenchError(f"{what}: working folder {cwd} does not exist")
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                       start_new_session=True)
        except OSError as error:
            raise CabenchError(f"{what}: cannot run {argv[0]} ({error.strerror or error})") from None
        try:
            with _group_ends_on_sigterm(process):
                returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            end_process_group(process)
            raise CabenchError(f"{what}: {Path(argv[0]).name} did not finish within {timeout:g} s") from None
        except BaseException:  # KeyboardInterrupt, or an exception raised by cabench's own signal handling
            end_process_group(process)
            raise
        end_process_group(process)  # what the program left running
        done = subprocess.CompletedProcess(argv, returncode, _text(stdout), _text(stderr))
    if done.returncode != 0:
        tail = " | ".join(line for line in done.stderr.strip().splitlines()[-STDERR_LINES:] if line.strip())
        raise CabenchError(f"{what}: {shlex.join(argv[:2])} ... exited with status {done.returncode}"
                           + (f": {tail}" if tail else ""))
    return done


def _text(file) -> str:
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")


def end_process_group(process: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """End every process of ``process``'s group (its session): SIGTERM, then SIGKILL to what is left
    after ``grace`` seconds; the program itself is reaped."""
    group = process.pid  # start_new_session: the program leads its own group
    if _signal_group(group, signal.SIGTERM):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if process.poll() is not None and not _signal_group(group, 0):
                break
            time.sleep(0.05)
        _signal_group(group, signal.SIGKILL)
    process.wait()


def _signal_group(group: int, signum: int) -> bool:
    """Send ``signum`` to process group ``group``; False when the group has no process left."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # the group id was reused by someone else's processes: not ours to signal
        return False
    return True


@contextmanager
def _group_ends_on_sigterm(process: subprocess.Popen) -> Iterator[None]:
    """While the program runs, a SIGTERM to cabench first ends the program's group, then does what
    it would have done (the handler installed before, or the default: terminate)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        end_process_group(process)
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def work_folder(chosen: str | os.PathLike | None, prefix: str) -> Iterator[Path]:
    """The folder a program works in: ``chosen`` (the user's, created if needed and always kept), or a
    fresh temporary folder that is removed when the block fails (on success it holds the program's
    outputs, which are read after the block)."""
    if chosen is not None:
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
