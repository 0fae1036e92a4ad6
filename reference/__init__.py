"""Reference ConsistentAvatar pipeline: TSD, TSDM (stage 2), FCSD (stage 3), emotion module, LCM.

Heavy parts (diffusers, transformers) load lazily, so ``from reference import tsd`` stays light.
"""

from __future__ import annotations

from metrics.lazy import lazy_getattr
from reference.tsd import tsd

_EXPORTS = {
    "ConsistentAvatarPipeline": "reference.pipeline",
    "render_sequence": "reference.render",
    "load_pipeline": "reference.render",
    "warm_up": "reference.render",
    "DecoupledUNet2DConditionModel": "reference.models",
    "ConditionEncoder": "reference.models",
}

__all__ = ["tsd", *_EXPORTS]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
