"""The batch of frames every layer passes around (readers, adapters, protocols, metrics).

It lives in ``metrics`` (the bottom layer) so that protocols can take it without importing the
readers; :mod:`benchmark.io` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frames:
    """A batch of frames: ids, RGB uint8 (n,H,W,3), the matte float32 (n,H,W) or None, and the
    colour as stored, uint8 (n,H,W,3) or None.

    ``rgb`` is already composited on the reader's background (in uint8) where the source had
    alpha, and the matte is what was composited with. ``colour`` keeps the colour channels as the
    file stored them, before compositing (None when the source had no alpha: then ``rgb`` is that
    colour). Evaluation protocols that reproduce a published script start from what the script
    loaded: the stored colour and the matte, composited in float or not at all.
    """

    ids: list[int]
    rgb: np.ndarray
    alpha: np.ndarray | None = None
    colour: np.ndarray | None = None

    @property
    def stored(self) -> np.ndarray:
        """The colour channels as stored in the source, before any compositing."""
        return self.rgb if self.colour is None else self.colour

    def __len__(self) -> int:
        return len(self.ids)
