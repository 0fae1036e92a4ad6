"""Values computed once per batch and shared by the metrics that need them (flows, landmarks).

Several metrics of one evaluation see the same :class:`~metrics.registry.Batch` object in turn;
the memo keeps what was computed for the current batch only (memory does not grow with the
video) and forgets it when a new batch arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class BatchMemo:
    """Memo of the values computed for the most recent batch, keyed by what was computed."""

    def __init__(self) -> None:
        self._batch: Any = None
        self._values: dict[Hashable, Any] = {}

    def get(self, batch: Any, key: Hashable, compute: Callable[[], Any]) -> Any:
        if self._batch is not batch:
            self._batch, self._values = batch, {}
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]


MEMO = BatchMemo()
