"""The C allocator's share of a cabench process's memory: glibc's malloc arenas, capped.

glibc gives each thread that allocates while the arenas it knows are locked an arena of its own,
up to 8 per core (16 on two cores), and an arena keeps the memory freed into it for reuse rather
than returning it to the system. An evaluation allocates frame-sized buffers on several threads
(the read-ahead thread decodes the next batch, the batch's worker threads filter SSIM strips and
resample frames, torch's threads), and frees them on others. How many arenas come to exist, and
how much each keeps, then depends on how the threads happen to interleave: on an idle machine
they rarely meet, while on a saturated one (threads preempted while holding an arena's lock) more
arenas are made and each retains batch-sized holes. That is the part of a process's peak memory
that is not set by the batch size, and the reason one saturated run peaked far above the same
command's usual peak.

:func:`cap_malloc_arenas` sets glibc's ``M_ARENA_MAX`` (as the ``MALLOC_ARENA_MAX`` variable
would, if it were set before the process started) when cabench's command line starts, before
torch, OpenCV or any thread of cabench's exists: every thread then allocates from one of
:data:`ARENAS` arenas, so what the allocator keeps is bounded by a small multiple of one batch's
working set, whatever the load. A ``MALLOC_ARENA_MAX`` the user set is left alone. Not glibc (musl,
macOS, Windows): nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ARENAS = 2
"""Arenas for the whole process: the main thread's, and one that the helper threads share."""
M_ARENA_MAX = -8  # glibc's malloc.h


def cap_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` (see the module docstring); True when the cap was set."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
