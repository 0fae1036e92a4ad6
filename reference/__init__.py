"""Reference ConsistentAvatar pipeline: TSD, TSDM (stage 2), FCSD (stage 3), emotion module, LCM.

Heavy parts (diffusers, transformers) load lazily, so ``from reference import tsd`` stays light.
"""

from __future__ import annotations

from reference.tsd import tsd

__all__ = ["tsd", "render_sequence", "ConsistentAvatarPipeline"]


def __getattr__(name: str):
    if name == "ConsistentAvatarPipeline":
        from reference.pipeline import ConsistentAvatarPipeline

        return ConsistentAvatarPipeline
    if name == "render_sequence":
        from reference.render import render_sequence

        return render_sequence
    if name in ("DecoupledUNet2DConditionModel", "ConditionEncoder"):
        from reference import models

        return getattr(models, name)
    raise AttributeError(f"module 'reference' has no attribute {name!r}")
