"""Metrics for talking-head avatars: functional kernels over torch tensors, evaluators, protocols.

Importing the package registers every metric (see :mod:`metrics.registry`).
"""

from metrics import face, frame, temporal  # noqa: F401  (register their metrics on import)
from metrics.errors import CabenchError, InputError, WeightsMissingError
from metrics.image import l1, l2, lpips, ms_ssim, psnr, ssim
from metrics.protocols import PROTOCOLS, get_protocol
from metrics.registry import MetricSpec, get, list_metrics, register

__all__ = [
    "PROTOCOLS",
    "CabenchError",
    "InputError",
    "MetricSpec",
    "WeightsMissingError",
    "get",
    "get_protocol",
    "l1",
    "l2",
    "list_metrics",
    "lpips",
    "ms_ssim",
    "psnr",
    "register",
    "ssim",
]
