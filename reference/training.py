"""Training of the reference pipeline under `accelerate`: vae (tiny only), stage2, stage3, distill-lcm.

Convention: one output folder holds the pipeline (``save_pretrained`` layout). Each stage loads it
(or builds fresh components from the config), trains its part and writes it back, and keeps its
resumable state in ``<output>/train_state/<stage>/`` (accelerate ``save_state``: weights,
optimizer, RNG). Batches, timesteps and noise of step k come from a generator seeded with
(seed, k), so a resumed run draws exactly what an uninterrupted run draws and ends with the same
weights.

Stages (paper section 5.1 defaults in reference/config.py):
* ``vae``: the tiny config has no pretrained autoencoder, so it fits one on the ground-truth frames
  and their TSD maps (MSE + 1e-6 KL) and sets ``scaling_factor`` to 1/std of the latents. sd15
  keeps the SD VAE.
* ``stage2`` (TSDM): eps-MSE on the VAE latent of the ground-truth TSD, condition f_c from the TSD
  of the stage-1 RGB, pose and expression.
* ``stage3`` (FCSD): eps-MSE on the latent of the ground-truth frame, ControlNet condition
  concat(normal, TSD of the ground truth: the target TSDM learns to produce), f_d with the emotion
  embedding. For sd15 the SD UNet stays frozen (the decoupled projections, E, the linear layers and
  the ControlNet learn); for tiny everything learns.
* ``distill-lcm``: latent consistency distillation of the FCSD UNet (reference/lcm.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from metrics.errors import CabenchError
from reference.attention import is_condition_parameter
from reference.config import ModelConfig, build_components, get_config
from reference.data import SequenceData
from reference.tsd import tsd

STAGES = ("vae", "stage2", "stage3", "distill-lcm")


@dataclass
class TrainOptions:
    stage: str
    config: str = "tiny"
    steps: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    save_every: int = 0
    resume: bool = False
    device: str = "cpu"
    sd_path: str | None = None
    progress: bool = True

    def resolved(self, config: ModelConfig) -> tuple[int, int, float]:
        defaults = config.train[self.stage]
        return (self.steps or defaults.steps, self.batch_size or defaults.batch_size,
                self.learning_rate or defaults.learning_rate)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of training step ``step``: batches, timesteps and noise depend on (seed, step) only."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class Batch(dict):
    """Float tensors: image, rgb, normal (N,3,H,W) in [0,1], pose (N,6), expression (N,100), emotion (N,D)."""


def make_batch(data: SequenceData, indices: np.ndarray, emotions: torch.Tensor, device) -> Batch:
    def images(arr):
        return torch.from_numpy(arr[indices]).permute(0, 3, 1, 2).float().div(255).to(device)

    return Batch(
        image=images(data.image), rgb=images(data.rgb), normal=images(data.normal),
        pose=torch.from_numpy(data.pose[indices]).to(device), expression=torch.from_numpy(data.expression[indices]).to(device),
        emotion=emotions[torch.from_numpy(indices)].to(device),
    )


def sample_indices(n: int, batch_size: int, generator: torch.Generator) -> np.ndarray:
    return torch.randint(0, n, (batch_size,), generator=generator).numpy()


def add_noise(scheduler, latents, generator):
    """x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps with t ~ U{0..T-1}; returns (x_t, t, eps)."""
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
    t = t.to(latents.device)
    return scheduler.add_noise(latents, noise, t), t, noise


class StageModel(nn.Module):
    """One training stage as a module: ``forward(batch, generator) -> loss`` (DDP-friendly)."""

    def __init__(self, pipe, stage: str, train_unet_base: bool):
        super().__init__()
        # Only the modules this stage trains are submodules: they alone go to the optimizer, DDP and
        # the resumable state (restoring frozen parts would undo other stages' training).
        object.__setattr__(self, "pipe", pipe)
        self.stage = stage
        for name in ("vae", "text_encoder", "tsdm_unet", "tsdm_encoder", "unet", "controlnet", "fcsd_encoder"):
            getattr(pipe, name).eval().requires_grad_(False)
        self.trained = nn.ModuleList(self.trainable_modules(train_unet_base))
        for module in self.trained:
            module.train().requires_grad_(True)
        if stage in ("stage2", "stage3") and not train_unet_base:
            unet = pipe.tsdm_unet if stage == "stage2" else pipe.unet
            self.trained.append(unet)
            for name, p in unet.named_parameters():
                if is_condition_parameter(name):
                    p.requires_grad_(True)

    def trainable_modules(self, train_unet_base: bool) -> list[nn.Module]:
        pipe = self.pipe
        if self.stage == "vae":
            return [pipe.vae]
        if self.stage == "stage2":
            return [pipe.tsdm_encoder] + ([pipe.tsdm_unet] if train_unet_base else [])
        if self.stage == "stage3":
            return [pipe.fcsd_encoder, pipe.controlnet] + ([pipe.unet] if train_unet_base else [])
        raise CabenchError(f"stage {self.stage!r} has no StageModel")

    def forward(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        return getattr(self, f"loss_{self.stage}")(batch, generator)

    def _latents(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.pipe.encode_latents(images)

    def loss_vae(self, batch, generator):
        vae = self.pipe.vae
        x = torch.cat([batch["image"], tsd(batch["image"])]) * 2 - 1
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(x.device)
        recon = vae.decode(z).sample
        return nn.functional.mse_loss(recon, x) + 1e-6 * posterior.kl().mean()

    def loss_stage2(self, batch, generator):
        pipe = self.pipe
        latents = self._latents(tsd(batch["image"]))
        noisy, t, noise = add_noise(pipe.scheduler, latents, generator)
        f_c = pipe.tsdm_encoder(tsd(batch["rgb"]), batch["pose"], batch["expression"])
        context = pipe.text_context(latents.shape[0])
        eps = pipe.tsdm_unet(noisy, t, context, cross_attention_kwargs={"condition_tokens": f_c}).sample
        return nn.functional.mse_loss(eps.float(), noise.float())

    def loss_stage3(self, batch, generator):
        pipe = self.pipe
        latents = self._latents(batch["image"])
        noisy, t, noise = add_noise(pipe.scheduler, latents, generator)
        guide = tsd(batch["image"])
        f_d = pipe.fcsd_encoder(guide, batch["pose"], batch["expression"], batch["emotion"])
        control = torch.cat([batch["normal"], guide], dim=1)
        context = pipe.text_context(latents.shape[0])
        eps = pipe.fcsd_denoiser(control, f_d, context)(noisy, t)
        return nn.functional.mse_loss(eps.float(), noise.float())


def load_or_build_pipeline(output: Path, config: ModelConfig, sd_path=None, seed: int = 0):
    from reference.pipeline import ConsistentAvatarPipeline

    if (output / "model_index.json").is_file():
        return ConsistentAvatarPipeline.from_pretrained(output)
    return ConsistentAvatarPipeline(**build_components(config, sd_path, seed))


def frame_emotions(pipe, data: SequenceData, emotion_db=None) -> tuple[torch.Tensor, list[str]]:
    """Per-frame emotion embeddings: labels from the expression database, else "neutral"."""
    from reference.pipeline import NEUTRAL

    if emotion_db is not None:
        from reference.emotion import ExpressionDatabase

        labels = ExpressionDatabase.from_folder(emotion_db).label(data.expression)
    else:
        labels = [NEUTRAL] * len(data)
    return pipe.embed_emotions(labels).float().cpu(), labels


def make_accelerator(mixed_precision: str = "no", cpu: bool = True):
    """An Accelerator; in a single process an earlier one's settings (e.g. its precision) are dropped,
    so several trainings can run in one Python session. Under `accelerate launch` nothing is reset."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    if AcceleratorState._shared_state and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu)


def train(options: TrainOptions, data: SequenceData, output: str | Path, emotion_db=None) -> list[float]:
    """Run one stage; returns the loss of every step run in this call (see the module docstring)."""
    if options.stage not in STAGES:
        raise CabenchError(f"unknown stage {options.stage!r}; choose one of: {', '.join(STAGES)}")
    config = get_config(options.config)
    if options.stage == "vae" and config.name != "tiny":
        raise CabenchError("stage vae is only for the tiny config: sd15 uses the pretrained SD VAE")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    steps, batch_size, lr = options.resolved(config)
    accelerator = make_accelerator(options.mixed_precision, cpu=options.device == "cpu")
    pipe = load_or_build_pipeline(output, config, options.sd_path, options.seed).to(accelerator.device)
    if options.stage == "distill-lcm":
        from reference.lcm import ConsistencyDistillation

        model = ConsistencyDistillation(pipe)
    else:
        model = StageModel(pipe, options.stage, config.train_unet_base)
    if options.gradient_checkpointing:
        for module in (pipe.unet, pipe.tsdm_unet, pipe.controlnet, pipe.vae):
            if getattr(module, "_supports_gradient_checkpointing", False):
                module.enable_gradient_checkpointing()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    model, optimizer = accelerator.prepare(model, optimizer)

    state_dir = output / "train_state" / options.stage
    start = 0
    if options.resume and (state_dir / "step.json").is_file():
        accelerator.load_state(str(state_dir))
        start = json.loads((state_dir / "step.json").read_text())["step"]
    emotions, _ = frame_emotions(pipe, data, emotion_db)
    losses = []
    log_path = output / f"train_log_{options.stage}.csv"
    log = open(log_path, "a" if start else "w")
    if not start:
        log.write("step,loss\n")
    for step in tqdm(range(start, steps), desc=options.stage, disable=not options.progress):
        generator = step_generator(options.seed, step)
        batch = make_batch(data, sample_indices(len(data), batch_size, generator), emotions, accelerator.device)
        with accelerator.autocast():
            loss = model(batch, generator)
        if not math.isfinite(loss.item()):
            raise CabenchError(f"stage {options.stage}: loss became {loss.item()} at step {step}; lower --lr")
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if options.stage == "distill-lcm":
            accelerator.unwrap_model(model).update_target()
        losses.append(loss.item())
        log.write(f"{step},{loss.item():.6f}\n")
        if options.save_every and (step + 1) % options.save_every == 0 and step + 1 < steps:
            save_checkpoint(accelerator, pipe, output, state_dir, step + 1)
    log.close()
    if options.stage == "vae":
        set_latent_scale(pipe, data, accelerator.device)
    save_checkpoint(accelerator, pipe, output, state_dir, steps)
    return losses


@torch.no_grad()
def set_latent_scale(pipe, data: SequenceData, device) -> None:
    """scaling_factor = 1 / std of the (unscaled) latents of the training frames (SD convention)."""
    pipe.vae.register_to_config(scaling_factor=1.0)
    idx = np.arange(min(len(data), 64))
    batch = make_batch(data, idx, torch.zeros(len(data), 1), device)
    latents = torch.cat([pipe.encode_latents(batch["image"]), pipe.encode_latents(tsd(batch["image"]))])
    pipe.vae.register_to_config(scaling_factor=float(1.0 / latents.std()))


def save_checkpoint(accelerator, pipe, output: Path, state_dir: Path, step: int) -> None:
    """Pipeline weights (safetensors) into ``output`` and the resumable state into ``state_dir``."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        pipe.save_pretrained(output)
        state_dir.mkdir(parents=True, exist_ok=True)
    accelerator.save_state(str(state_dir))
    if accelerator.is_main_process:
        (state_dir / "step.json").write_text(json.dumps({"step": step}))
