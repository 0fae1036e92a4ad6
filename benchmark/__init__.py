"""Datasets, frame I/O, evaluation runs and the CLI (the timing suites are in tests/bench/).

``benchmark.evaluate(pred=..., gt=..., ...)`` is the evaluation entry point (see :mod:`benchmark.evaluation`).
It is imported on first use, so that ``cabench --help`` and one-line errors do not load torch.
"""

from __future__ import annotations

from metrics.lazy import lazy_getattr

_EXPORTS = {"evaluate": "benchmark.evaluation", "summarize": "benchmark.results.summary"}

__all__ = ["evaluate", "summarize"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
