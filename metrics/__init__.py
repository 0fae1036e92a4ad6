"""Metrics for talking-head avatars: functional kernels over torch tensors, evaluators, protocols.

The metric modules register their metrics (and weight files) when imported; :func:`load_metrics`
imports them all, and the registry calls it before any lookup. The names below are imported on
first use, so that importing :mod:`metrics.errors` (as the CLI does) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from metrics.errors import CabenchError, InputError, WeightsMissingError

METRIC_MODULES = ("metrics.frame", "metrics.temporal", "metrics.face")

_EXPORTS = {
    **dict.fromkeys(("l1", "l2", "lpips", "ms_ssim", "psnr", "ssim"), "metrics.image"),
    **dict.fromkeys(("PROTOCOLS", "get_protocol"), "metrics.protocols"),
    **dict.fromkeys(("MetricSpec", "get", "list_metrics", "register"), "metrics.registry"),
}

__all__ = [
    "PROTOCOLS", "CabenchError", "InputError", "MetricSpec", "WeightsMissingError", "get", "get_protocol", "l1", "l2",
    "list_metrics", "load_metrics", "lpips", "ms_ssim", "psnr", "register", "ssim",
]


def load_metrics() -> None:
    """Import every metric module, registering its metrics and weight files (idempotent)."""
    for name in METRIC_MODULES:
        importlib.import_module(name)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")  # a submodule, e.g. metrics.image
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
