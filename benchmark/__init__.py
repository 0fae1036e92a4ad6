"""Datasets, frame I/O, evaluation runs, the CLI and the timing suites.

``benchmark.evaluate(pred, gt, ...)`` is the evaluation entry point (see :mod:`benchmark.evaluate`).
"""

from benchmark.evaluate import evaluate, summarize

__all__ = ["evaluate", "summarize"]
