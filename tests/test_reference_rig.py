"""Official-code (DiffusionRig-style) variant: 12 input channels, 64-d ResNet-18 latent, conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_helpers import make_sequence

from reference.rig import (
    RigModel,
    RigTrainOptions,
    physical_condition,
    rig_loss,
    rig_scheduler,
    sample_rig,
    train_rig,
)
from reference.tsd import tsd


def test_physical_conditions():
    g = torch.Generator().manual_seed(0)
    rgb, normal = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    cond = physical_condition("tsd", rgb, normal)
    assert cond.shape == (2, 9, 32, 32)
    assert torch.equal(cond[:, :3], tsd(rgb)) and torch.equal(cond[:, 3:6], normal) and torch.equal(cond[:, 6:], rgb)
    facing = torch.zeros(1, 3, 4, 4)
    facing[:, 2] = 1.0  # normal (0,0,1) encoded: x,y = 0 -> 0.5; z = 1 -> 1
    facing[:, :2] = 0.5
    render = physical_condition("render", torch.full((1, 3, 4, 4), 0.6), facing)[:, :3]
    torch.testing.assert_close(render, torch.full((1, 3, 4, 4), 0.6))  # lit head-on: the albedo itself


def test_model_shapes_latent_and_sampling():
    torch.manual_seed(0)
    model = RigModel()
    assert model.unet.config.in_channels == 12 and model.encoder.fc.out_features == 64
    g = torch.Generator().manual_seed(1)
    rgb, normal = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    assert model.global_latent(rgb).shape == (2, 64)
    out = sample_rig(model, rgb, normal, rgb, steps=2, generator=torch.Generator().manual_seed(0))
    again = sample_rig(model, rgb, normal, rgb, steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 64, 64) and torch.equal(out, again)
    # the identity image reaches the blocks through the latent
    eps_a = model(torch.zeros(1, 3, 64, 64), torch.tensor([10]), physical_condition("tsd", rgb[:1], normal[:1]), rgb[:1])
    eps_b = model(torch.zeros(1, 3, 64, 64), torch.tensor([10]), physical_condition("tsd", rgb[:1], normal[:1]), normal[:1])
    assert not torch.allclose(eps_a, eps_b)


def test_training_lowers_loss_and_resumes_identically(tmp_path):
    from reference.data import load_sequence

    # 16 px, two steps straight against one and one resumed: the model (a ResNet-18 beside the UNet) and its
    # Adam state are the cost, and resuming one step proves the state round trip as well as resuming two
    data = load_sequence(make_sequence(tmp_path / "seq", frames=4, size=16), "all")
    opts = dict(batch_size=2, learning_rate=2e-3, progress=False)
    straight = train_rig(RigTrainOptions(steps=2, **opts), data, tmp_path / "a")
    train_rig(RigTrainOptions(steps=1, **opts), data, tmp_path / "b")
    resumed = train_rig(RigTrainOptions(steps=2, resume=True, **opts), data, tmp_path / "b")
    assert resumed == straight[1:]
    a, b = RigModel.from_pretrained(tmp_path / "a"), RigModel.from_pretrained(tmp_path / "b")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # a fixed batch: a few steps lower its loss
    from reference.steps import Shard, StepDraw
    from reference.training import make_batch

    def step_draw():
        return StepDraw(0, 0, Shard(2))

    batch = make_batch(data, np.arange(2), torch.zeros(4, 1), "cpu")
    a.train()  # batch statistics in BatchNorm, as in training
    opt = torch.optim.Adam(a.parameters(), lr=2e-3)
    with torch.no_grad():
        before = rig_loss(a, rig_scheduler(), batch, step_draw()).item()
    for _ in range(5):  # 5 steps: <= 0.73x the loss for 4 training seeds x 2 draws (0.24-0.42x after 10)
        loss = rig_loss(a, rig_scheduler(), batch, step_draw())
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        after = rig_loss(a, rig_scheduler(), batch, step_draw()).item()
    assert after < 0.95 * before, (before, after)


def test_unknown_condition():
    from metrics.errors import CabenchError

    with pytest.raises(CabenchError, match="rig condition"):
        physical_condition("albedo", torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_cli_train_rig_render_condition(tmp_path):
    from benchmark.cli import main

    seq = make_sequence(tmp_path / "seq", frames=3)
    assert main(["train", "rig", "--data", str(seq), "--output", str(tmp_path / "o"), "--steps", "1",
                 "--batch-size", "1", "--rig-condition", "render", "--quiet"]) == 0
    assert RigModel.from_pretrained(tmp_path / "o" / "rig").config.condition == "render"
