"""Metrics for talking-head avatars: functional kernels over torch tensors, evaluators, protocols.

The metric modules register their metrics (and weight files) when imported; :func:`load_metrics`
imports them all, and the registry calls it before any lookup. The names below are imported on
first use, so that importing :mod:`metrics.errors` (as the CLI does) does not load torch.
"""

from __future__ import annotations

import importlib

from metrics.errors import CabenchError, InputError, WeightsMissingError
from metrics.lazy import lazy_getattr

METRIC_MODULES = ("metrics.frame", "metrics.temporal", "metrics.face", "metrics.runtime", "metrics.lipsync",
                  "metrics.arcface", "metrics.keypoints", "metrics.cpbd", "metrics.setlevel",
                  "metrics.fvd")

_EXPORTS = {
    **dict.fromkeys(("l1", "l2", "lpips", "ms_ssim", "psnr", "ssim"), "metrics.image"),
    **dict.fromkeys(("PROTOCOLS", "get_protocol"), "metrics.protocols"),
    **dict.fromkeys(("MetricSpec", "create", "get", "list_metrics", "register"), "metrics.registry"),
}

__all__ = [
    "PROTOCOLS", "CabenchError", "InputError", "MetricSpec", "WeightsMissingError", "create", "get", "get_protocol",
    "l1", "l2",
    "list_metrics", "load_metrics", "lpips", "ms_ssim", "psnr", "register", "ssim",
]


def load_metrics() -> None:
    """Import every metric module, registering its metrics and weight files (idempotent)."""
    for name in METRIC_MODULES:
        importlib.import_module(name)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
