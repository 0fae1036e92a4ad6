"""The device names the harness takes: ``cpu``, ``cuda``, ``cuda:N`` and ``auto``.

Convention: every command option, config key and function argument that takes a device goes
through :func:`check_device` (the name alone; torch is not imported) before any work, and through
:func:`resolve_device` where the device is used. ``auto`` is CUDA when a CUDA device is available,
else the CPU (under ``accelerate launch``, the runner takes the process's own device instead).
Other torch device types (``mps``, ``meta``, ``xla``...) are refused: the metrics and the reference
pipeline are tested on the CPU and CUDA only, and ``meta`` would give numbers that are not numbers.
"""

from __future__ import annotations

import re
from typing import Any

from metrics.errors import CabenchError

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"
_DEVICE = re.compile(r"(cpu|cuda|cuda:\d+|auto)\Z")


def check_device(device: Any, what: str = "--device") -> str:
    """``device`` as a name the harness takes (a ``torch.device`` is turned into its name).

    Raises:
        CabenchError: naming ``what`` (the option or key), the value and the names allowed.
    """
    name = str(device) if type(device).__name__ == "device" else device
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise CabenchError(f"{what} {device!r}: not a device this harness runs on; choose {DEVICE_CHOICES}")
    return name


def resolve_device(device: Any, what: str = "--device"):
    """The ``torch.device`` to run on: ``auto`` resolved, CUDA checked to be there.

    Raises:
        CabenchError: a name :func:`check_device` refuses, or CUDA (or CUDA device N) not available.
    """
    import torch

    name = check_device(device, what)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(name)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise CabenchError(f"{what} {name}: no CUDA device is available (use cpu)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise CabenchError(f"{what} {name}: there are {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return resolved
