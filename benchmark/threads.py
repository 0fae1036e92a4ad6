"""The CPU thread policy of the commands that render or time on a CPU (`demo`, `infer`; `time` has its
own ``--threads``): one torch thread unless ``OMP_NUM_THREADS`` says otherwise.

Why: the frames these commands render are small, so a second thread gains little on an idle 2-core
machine, and on a busy one two spinning threads per process made the demo several times slower
(measured: 5m36s against 1m57s) and `cabench infer` use 3-5x the CPU time per frame for the same
frames. Under ``torchrun`` / ``accelerate launch`` each process already runs at one thread
(``OMP_NUM_THREADS=1``), which is respected. The caller's thread count is restored afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_thread_unless_set(cpu: bool = True) -> Iterator[None]:
    """One torch thread for the block (when ``cpu``) unless ``OMP_NUM_THREADS`` is set; restored after."""
    import torch

    previous = torch.get_num_threads()
    if cpu and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
