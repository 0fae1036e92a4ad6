"""Metrics for talking-head avatars: functional kernels over torch tensors, evaluators, protocols.

Importing the package registers every metric (see :mod:`metrics.registry`).
"""

from metrics.errors import CabenchError, InputError, WeightsMissingError
from metrics.registry import MetricSpec, get, list_metrics, register

__all__ = ["CabenchError", "InputError", "MetricSpec", "WeightsMissingError", "get", "list_metrics", "register"]
