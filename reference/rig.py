"""The official-code variant: DiffusionRig-style pixel-space conditional diffusion.

The released ConsistentAvatar code is DiffusionRig with the TSD map replacing the Lambertian
render in its 9-channel physical condition: the UNet sees concat(x_t, condition) (12 channels) and
a ResNet-18 global latent (64-d) of an identity image modulates its blocks (added to the time
embedding, which drives scale-shift group norm). ``condition="render"`` keeps the render: the
DiffusionRig baseline model.

Stand-ins, because the datasets carry no DECA buffers: the stage-1 RGB plays the albedo, and the
"render" is that albedo shaded Lambertian-style by the stage-1 normal under a frontal light.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from diffusers import DDIMScheduler, DDPMScheduler, ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn
from tqdm.auto import tqdm

from metrics.errors import CabenchError
from reference.tsd import tsd

RIG_CONFIGS = {
    "tiny": dict(sample_size=64, block_out_channels=(32, 64, 64), layers_per_block=1,
                 down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8),
    # DiffusionRig's 256 px model: 128 * (1, 1, 2, 2, 4, 4), attention at 16 px
    "sd15": dict(sample_size=256, block_out_channels=(128, 128, 256, 256, 512, 512), layers_per_block=2,
                 down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4, norm_num_groups=32),
}


def physical_condition(kind: str, rgb: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """The 9-channel condition in [0,1]: [TSD or Lambertian render, normal, albedo] (see module doc)."""
    albedo = rgb
    if kind == "tsd":
        detail = tsd(rgb)
    elif kind == "render":
        n = normal * 2 - 1
        n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-6)
        detail = albedo * n[:, 2:3].clamp_min(0)  # light along +z (towards the camera)
    else:
        raise CabenchError(f"unknown rig condition {kind!r} (expected 'tsd' or 'render')")
    return torch.cat([detail, normal, albedo], dim=1)


class RigModel(ModelMixin, ConfigMixin):
    """eps(x_t, t | physical condition, identity image): UNet2DModel with 12 input channels."""

    @register_to_config
    def __init__(self, condition: str = "tsd", latent_dim: int = 64, sample_size: int = 64,
                 block_out_channels=(32, 64, 64), layers_per_block: int = 1,
                 down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups: int = 8):
        super().__init__()
        self.unet = UNet2DModel(
            sample_size=sample_size, in_channels=12, out_channels=3, block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block, down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types), norm_num_groups=norm_num_groups,
            class_embed_type="identity", resnet_time_scale_shift="scale_shift",
        )
        self.encoder = torchvision.models.resnet18(weights=None, num_classes=latent_dim)
        self.latent_proj = nn.Linear(latent_dim, block_out_channels[0] * 4)

    def global_latent(self, identity: torch.Tensor) -> torch.Tensor:
        """The 64-d global latent of identity images in [0,1]."""
        return self.encoder(identity * 2 - 1)

    def forward(self, x_t, t, physical, identity):
        latent = self.latent_proj(self.global_latent(identity))
        return self.unet(torch.cat([x_t, physical * 2 - 1], dim=1), t, class_labels=latent).sample


def rig_scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True)


@torch.no_grad()
def sample_rig(model: RigModel, rgb, normal, identity, steps: int = 20, generator=None) -> torch.Tensor:
    """DDIM sampling in pixel space; images in [0,1] (N,3,H,W)."""
    scheduler = DDIMScheduler.from_config(rig_scheduler().config)
    scheduler.set_timesteps(steps)
    physical = physical_condition(model.config.condition, rgb, normal)
    x = torch.randn(rgb.shape, generator=generator).to(rgb.device)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t, physical, identity), t, x).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


@dataclass
class RigTrainOptions:
    config: str = "tiny"
    condition: str = "tsd"
    steps: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    device: str | None = "cpu"
    resume: bool = False
    progress: bool = True


def rig_loss(model, scheduler, batch, draw) -> torch.Tensor:
    x0 = batch["image"] * 2 - 1
    noise = draw.randn(x0.shape[1:]).to(x0.device)
    t = draw.randint(1000).to(x0.device)
    physical = physical_condition(model.config.condition, batch["rgb"], batch["normal"])
    eps = model(scheduler.add_noise(x0, noise, t), t, physical, batch["image"])
    return nn.functional.mse_loss(eps, noise)


def train_rig(options: RigTrainOptions, data, output: Path) -> list[float]:
    """Train the variant under accelerate; weights to ``output`` (safetensors), state to output/train_state."""
    from reference.config import get_config
    from reference.steps import Shard, StepDraw
    from reference.training import make_accelerator, make_batch

    if options.config not in RIG_CONFIGS:
        raise CabenchError(f"unknown config {options.config!r} for rig; choose one of: {', '.join(RIG_CONFIGS)}")
    defaults = get_config(options.config).train["rig"]
    steps = options.steps or defaults.steps
    batch_size = options.batch_size or defaults.batch_size
    output = Path(output)
    accelerator = make_accelerator(device=options.device)
    if (output / "config.json").is_file():
        model = RigModel.from_pretrained(output)
    else:
        torch.manual_seed(options.seed)
        model = RigModel(condition=options.condition, **RIG_CONFIGS[options.config])
    model.train()  # from_pretrained returns eval mode; BatchNorm must see batch statistics either way
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate or defaults.learning_rate)
    model, optimizer = accelerator.prepare(model, optimizer)
    state_dir = output / "train_state"
    start = 0
    if options.resume and (state_dir / "step.json").is_file():
        accelerator.load_state(str(state_dir))
        start = json.loads((state_dir / "step.json").read_text())["step"]
    scheduler = rig_scheduler()
    emotions = torch.zeros(len(data), 1)
    losses = []
    for step in tqdm(range(start, steps), desc="rig", disable=not options.progress):
        draw = StepDraw(options.seed, step, Shard(batch_size))
        batch = make_batch(data, draw.frames(len(data)), emotions, accelerator.device)
        loss = rig_loss(model, scheduler, batch, draw)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    accelerator.unwrap_model(model).save_pretrained(output)
    accelerator.save_state(str(state_dir))
    (state_dir / "step.json").write_text(json.dumps({"step": steps}))
    np.savetxt(output / f"losses_{start}_{steps}.txt", np.asarray(losses))
    return losses
