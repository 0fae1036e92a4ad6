"""Datasets, frame I/O, evaluation runs, the CLI and the timing suites.

``benchmark.evaluate(pred, gt, ...)`` is the evaluation entry point (see :mod:`benchmark.evaluation`).
It is imported on first use, so that ``cabench --help`` and one-line errors do not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"evaluate": "benchmark.evaluation", "summarize": "benchmark.evaluation"}

__all__ = ["evaluate", "summarize"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")  # a submodule, e.g. benchmark.demo
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
