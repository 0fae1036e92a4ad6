"""The batch of frames every layer passes around (readers, adapters, protocols, metrics).

It lives in ``metrics`` (the bottom layer) so that protocols can take it without importing the
readers; :mod:`benchmark.io` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frames:
    """A batch of frames: ids, RGB uint8 (n,H,W,3) and the matte float32 (n,H,W) or None.

    ``rgb`` is already composited on the reader's background where the source had alpha; the
    matte is what was composited with.
    """

    ids: list[int]
    rgb: np.ndarray
    alpha: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)
