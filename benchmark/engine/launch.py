"""Several processes and the device: which share of the pairs this process runs, and on what.

Launched as n processes (``accelerate launch --multi_gpu`` on GPUs, ``torchrun`` for CPU
processes, which accelerate's own launcher starts only through MPI), accelerate's process state
says which process this is: process i takes pairs i, i+n, ...; the processes wait for each other
and the main process merges. ``--shard I/N`` does the same by hand, without merging.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from metrics.device import resolve_device


@dataclass
class Launch:
    """This process's share of a run: ``shard`` (index, count), its device, and whether it merges."""

    shard: tuple[int, int]
    device: str
    state: Any = None  # accelerate's PartialState when launched as several processes

    @property
    def merges(self) -> bool:
        """Whether this process merges the run (the main process, or the only one)."""
        if self.state is not None:
            return bool(self.state.is_main_process)
        return self.shard[1] == 1

    @property
    def lock_shard(self) -> tuple[int, int] | None:
        """The shard to lock the run folder for (None: the whole run)."""
        return self.shard if self.shard[1] > 1 else None

    def wait_for_everyone(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def _accelerate_state(device: str):
    """accelerate's process state when launched as several processes (WORLD_SIZE > 1), else None.
    CPU runs (``device = "cpu"`` or no CUDA) use gloo."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu" or not torch.cuda.is_available())


def launch(device: str, shard: tuple[int, int] | None) -> Launch:
    """This process's share: ``shard`` when given, else accelerate's process when launched, else all."""
    state = _accelerate_state(device) if shard is None else None
    if state is not None:
        shard = (state.process_index, state.num_processes)
        if device == "auto":
            device = str(state.device)
    return Launch(shard or (0, 1), str(resolve_device(device, "[run] device")), state)  # "auto": CUDA if there
