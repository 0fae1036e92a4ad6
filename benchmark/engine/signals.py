"""SIGTERM handled like Ctrl-C: the run stops between two writes of its store, keeps what it stored,
and the command line exits with status 143 (SIGINT: 130) after one line."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from metrics.errors import Terminated


def _raise_terminated(signum, frame) -> None:
    raise Terminated("terminated (SIGTERM)")


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
