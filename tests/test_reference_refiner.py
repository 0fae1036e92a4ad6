"""SDXL-refiner pass with tiny SDXL-style parts: runs after FCSD, changes the frames a little, round-trips."""

from __future__ import annotations

import pytest
import torch
from reference_helpers import random_inputs

from metrics.errors import CabenchError


def test_refiner_pass(tmp_path):
    from reference.config import build_components
    from reference.pipeline import ConsistentAvatarPipeline
    from reference.refiner import tiny_refiner

    pipe = ConsistentAvatarPipeline(**build_components("tiny", seed=0))
    pipe.set_scheduler("lcm")
    inputs = random_inputs(2)
    with pytest.raises(CabenchError, match="load_refiner"):
        pipe(*inputs, num_inference_steps=1, generator=torch.Generator().manual_seed(0), refiner_strength=0.3)
    tiny_refiner().save_pretrained(tmp_path / "refiner")
    pipe.load_refiner(tmp_path / "refiner")
    plain = pipe(*inputs, num_inference_steps=1, generator=torch.Generator().manual_seed(0)).images
    refined = pipe(*inputs, num_inference_steps=1, generator=torch.Generator().manual_seed(0),
                   refiner_strength=0.3, refiner_steps=4).images
    again = pipe(*inputs, num_inference_steps=1, generator=torch.Generator().manual_seed(0),
                 refiner_strength=0.3, refiner_steps=4).images
    assert refined.shape == plain.shape == (2, 3, 32, 32)
    assert torch.isfinite(refined).all() and float(refined.min()) >= 0 and float(refined.max()) <= 1
    assert not torch.equal(refined, plain) and torch.equal(refined, again)
    with pytest.raises(CabenchError, match="does not exist"):
        pipe.load_refiner(tmp_path / "nowhere")
