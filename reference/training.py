"""Training of the reference pipeline under `accelerate`: vae (tiny only), stage2, stage3, distill-lcm.

Convention: one output folder holds the pipeline (``save_pretrained`` layout). Each stage loads it
(or builds fresh components from the config), trains its part, writes that part back, and keeps
its resumable state in ``<output>/train_state/<stage>/`` (accelerate ``save_state``: the trained
parts, optimizer). What each step draws (frames, timesteps, noise) depends on (seed, step) and
the process's share of the step's batch (reference/steps.py), so a resumed run ends with exactly
the weights of an uninterrupted one, for a fixed number of processes.

Data parallel: under ``accelerate launch`` or ``torchrun`` every process trains on its own shard
of each step's batch (``--batch-size`` is per process and micro-step) and accelerate averages the
gradients; ``--gradient-accumulation-steps`` splits a step into micro-steps. Only the main process
writes weights and the loss log; the log (``train_log_<stage>.csv``: step and the loss over the
whole step's batch) is appended and flushed step by step, so a killed run keeps every line it
logged, and a resumed run first drops the lines past its checkpoint. The device is accelerate's
(the GPU of the process when there is one) unless ``--device cpu`` or ``cuda`` is given.

Stages (paper section 5.1 defaults in reference/config.py):
* ``vae``: the tiny config has no pretrained autoencoder, so it fits one on the ground-truth frames
  and their TSD maps (MSE + 1e-6 KL), sets ``scaling_factor`` to 1/std of the latents and records
  the training resolution as ``sample_size``. sd15 keeps the SD VAE.
* ``stage2`` (TSDM): eps-MSE on the VAE latent of the ground-truth TSD, condition f_c from the TSD
  of the stage-1 RGB, pose and expression.
* ``stage3`` (FCSD): eps-MSE on the latent of the ground-truth frame, ControlNet condition
  concat(normal, TSD) and f_d with the emotion embedding. The TSD it trains on (``stage3_tsd``):
  ``tsdm`` (default), TSDM's aligned TSD of the frame, as it meets at inference (the paper trains
  stage 3 "based on the outputs of the first two stages"; sampled once, reference/tsd_cache.py),
  or ``ground-truth``, the TSD of the frame itself (what TSDM learns to produce). ``ablation``
  trains a variant without one input instead (reference/ablations.py) into
  ``ablations/<name>/``; ``wo_stage2`` trains on the unaligned TSD of the stage-1 RGB. For sd15 the
  SD UNet stays frozen (the decoupled projections, E, the linear layers and the ControlNet learn);
  for tiny everything learns.
* ``distill-lcm``: latent consistency distillation of the FCSD (``component="fcsd"``, of the
  ``ablation`` variant when given; conditioned as stage 3 trained it) or of TSDM
  (``component="tsdm"``) into an LCM-LoRA (reference/lcm.py).
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from metrics.errors import CabenchError, CabenchWarning
from reference.ablations import ALIASES, FCSD_PARTS, fcsd_inputs, trained_variant, variant_folder
from reference.attention import is_condition_parameter
from reference.config import ModelConfig, build_components, get_config
from reference.data import SequenceData
from reference.steps import Shard, StepDraw
from reference.tsd import PAPER_CUTOFF, tsd

STAGES = ("vae", "stage2", "stage3", "distill-lcm")
STAGE3_TSD = ("tsdm", "ground-truth")
COMPONENTS = ("fcsd", "tsdm")
DEVICES = ("cpu", "cuda")


@dataclass
class TrainOptions:
    stage: str
    config: str = "tiny"
    steps: int | None = None
    batch_size: int | None = None  # per process and micro-step
    learning_rate: float | None = None
    seed: int = 0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    gradient_accumulation_steps: int = 1
    save_every: int = 0
    resume: bool = False
    device: str | None = None  # None: accelerate's device for this process
    sd_path: str | None = None
    progress: bool = True
    ablation: str | None = None  # stage3, distill-lcm of the fcsd: the trained variant
    stage3_tsd: str | None = None  # stage3, distill-lcm of the fcsd: "tsdm" (default) or "ground-truth"
    component: str = "fcsd"  # distill-lcm: "fcsd" or "tsdm"
    lora_rank: int | None = None  # distill-lcm; None: the config's
    snr_gamma: float | None = None  # stage2, stage3: Min-SNR-gamma loss weighting; None: plain eps-MSE (the paper's)
    tsd_cutoff: float | None = None  # the stage that makes the pipeline: the TSD's D (None: the paper's 10)

    def resolved(self, config: ModelConfig) -> tuple[int, int, float]:
        defaults = config.train[self.stage]
        return (self.steps or defaults.steps, self.batch_size or defaults.batch_size,
                self.learning_rate or defaults.learning_rate)


@dataclass(frozen=True)
class Target:
    """What a stage trains and where it goes: ``folder`` (the pipeline folder or a variant's), the
    pipeline ``parts`` saved there (or ``lora_unet``, the UNet whose LCM-LoRA is), the TSD the FCSD
    sees (``guide``: "tsdm", "ground-truth" or "unaligned")."""

    name: str  # vae, stage2, stage3, distill-lcm-fcsd, distill-lcm-tsdm
    folder: Path
    parts: tuple[str, ...] = ()
    variant: str | None = None
    lora_unet: str | None = None
    guide: str | None = None

    @property
    def state_name(self) -> str:
        """The resumable state's folder under ``train_state/``: the name, and the variant's."""
        return self.name if self.variant is None else f"{self.name}-{self.variant}"

    @property
    def log_path(self) -> Path:
        return self.folder / f"train_log_{self.name}.csv"


def stage_target(options: TrainOptions, output: Path) -> Target:
    """Check the stage's options against each other and say where its results go."""
    stage, variant = options.stage, trained_variant(options.ablation)
    fcsd = stage == "stage3" or (stage == "distill-lcm" and options.component == "fcsd")
    if options.ablation is not None and not fcsd:
        raise CabenchError(f"--ablation applies to stage3 and to distill-lcm of the fcsd, not to {stage}"
                           + (f" --component {options.component}" if stage == "distill-lcm" else ""))
    if options.ablation is not None and variant is None:
        raise CabenchError(f"--ablation {options.ablation} is not trained: wo_lcm is the full model's undistilled "
                           "weights at their usual sampler (an inference setting)")
    if options.component not in COMPONENTS:
        raise CabenchError(f"unknown component {options.component!r}; choose one of: {', '.join(COMPONENTS)}")
    if options.stage3_tsd is not None and options.stage3_tsd not in STAGE3_TSD:
        raise CabenchError(f"unknown --stage3-tsd {options.stage3_tsd!r}; choose one of: {', '.join(STAGE3_TSD)}")
    if options.snr_gamma is not None and (stage not in ("stage2", "stage3") or not options.snr_gamma > 0):
        raise CabenchError(f"--snr-gamma applies to stage2 and stage3 and must be positive; got {options.snr_gamma} "
                           f"for {stage}")
    if options.tsd_cutoff is not None and not options.tsd_cutoff > 0:
        raise CabenchError(f"--tsd-cutoff must be positive, got {options.tsd_cutoff}")
    guide = None
    if fcsd:
        if not fcsd_inputs(variant).aligned_tsd:
            if options.stage3_tsd is not None:
                raise CabenchError(f"--ablation {options.ablation} trains on the unaligned TSD of the stage-1 RGB; "
                                   "drop --stage3-tsd")
            guide = "unaligned"
        else:
            guide = options.stage3_tsd or "tsdm"
    folder = variant_folder(output, variant) if variant else output
    if stage == "distill-lcm":
        unet = "unet" if options.component == "fcsd" else "tsdm_unet"
        return Target(f"distill-lcm-{options.component}", folder, variant=variant, lora_unet=unet, guide=guide)
    parts = {"vae": ("vae",), "stage2": ("tsdm_unet", "tsdm_encoder"), "stage3": FCSD_PARTS}[stage]
    return Target(stage, folder, parts, variant=variant, guide=guide)


class Batch(dict):
    """Float tensors: image, rgb, normal (N,3,H,W) in [0,1], pose (N,6), expression (N,100),
    emotion (N,D), index (N,) into the training frames; ``guide`` (N,3,H,W): the TSD the FCSD sees."""


def make_batch(data: SequenceData, indices: np.ndarray, emotions: torch.Tensor, device) -> Batch:
    def images(arr):
        return torch.from_numpy(arr[indices]).permute(0, 3, 1, 2).float().div(255).to(device)

    index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
    return Batch(
        image=images(data.image), rgb=images(data.rgb), normal=images(data.normal),
        pose=torch.from_numpy(data.pose[indices]).to(device), expression=torch.from_numpy(data.expression[indices]).to(device),
        emotion=emotions[index].to(device), index=index,
    )


def guide_tsd(kind: str, batch: Batch, aligned: torch.Tensor | None = None, cutoff: float = PAPER_CUTOFF) -> torch.Tensor:
    """The TSD stage 3 conditions on: TSDM's cached TSD' (``tsdm``), the ground truth's, or the unaligned."""
    if kind == "ground-truth":
        return tsd(batch["image"], cutoff)
    if kind == "unaligned":
        return tsd(batch["rgb"], cutoff)
    return aligned[batch["index"]].to(batch["image"].device)


def eps_loss(eps: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, scheduler, snr_gamma: float | None = None):
    """The noise-prediction loss: plain MSE (the paper's), or with ``snr_gamma`` the Min-SNR-gamma
    weighting (Hang et al. 2023) for eps-prediction: each sample's MSE times min(SNR_t, gamma) / SNR_t,
    SNR_t = a_t / (1 - a_t), which lowers the weight of the low-noise timesteps, where eps-MSE is
    large but says little about the frame, towards the weight x0-prediction gives them."""
    if snr_gamma is None:
        return nn.functional.mse_loss(eps.float(), noise.float())
    a = scheduler.alphas_cumprod.to(t.device)[t].double()
    snr = a / (1 - a)
    weight = (snr.clamp(max=snr_gamma) / snr).float()
    per_sample = (eps.float() - noise.float()).pow(2).flatten(1).mean(1)
    return (weight * per_sample).mean()


def add_noise(scheduler, latents, draw: StepDraw):
    """x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps with t ~ U{0..T-1}; returns (x_t, t, eps)."""
    noise = draw.randn(latents.shape[1:]).to(latents.device, latents.dtype)
    t = draw.randint(scheduler.config.num_train_timesteps).to(latents.device)
    return scheduler.add_noise(latents, noise, t), t, noise


class StageModel(nn.Module):
    """One training stage as a module: ``forward(batch, draw) -> loss`` (DDP-friendly)."""

    def __init__(self, pipe, stage: str, train_unet_base: bool, snr_gamma: float | None = None):
        super().__init__()
        self.snr_gamma = snr_gamma
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

    def forward(self, batch: Batch, draw: StepDraw) -> torch.Tensor:
        return getattr(self, f"loss_{self.stage}")(batch, draw)

    def _latents(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.pipe.encode_latents(images)

    def loss_vae(self, batch, draw):
        vae = self.pipe.vae
        x = torch.cat([batch["image"], self.pipe.tsd_of(batch["image"])]) * 2 - 1
        posterior = vae.encode(x).latent_dist
        per_sample = draw.randn((2, *posterior.mean.shape[1:])).transpose(0, 1)  # (2, N, C, h, w): frame, TSD
        z = posterior.mean + posterior.std * per_sample.reshape(posterior.mean.shape).to(x.device)
        recon = vae.decode(z).sample
        return nn.functional.mse_loss(recon, x) + 1e-6 * posterior.kl().mean()

    def loss_stage2(self, batch, draw):
        pipe = self.pipe
        latents = self._latents(pipe.tsd_of(batch["image"]))
        noisy, t, noise = add_noise(pipe.scheduler, latents, draw)
        f_c = pipe.tsdm_encoder(pipe.tsd_of(batch["rgb"]), batch["pose"], batch["expression"])
        context = pipe.text_context(latents.shape[0])
        eps = pipe.tsdm_unet(noisy, t, context, cross_attention_kwargs={"condition_tokens": f_c}).sample
        return eps_loss(eps, noise, t, pipe.scheduler, self.snr_gamma)

    def loss_stage3(self, batch, draw):
        pipe = self.pipe
        latents = self._latents(batch["image"])
        noisy, t, noise = add_noise(pipe.scheduler, latents, draw)
        control, f_d = pipe.fcsd_condition(batch["normal"], batch["guide"], batch["pose"], batch["expression"],
                                           batch["emotion"])
        context = pipe.text_context(latents.shape[0])
        eps = pipe.fcsd_denoiser(control, f_d, context)(noisy, t)
        return eps_loss(eps, noise, t, pipe.scheduler, self.snr_gamma)


def load_for_stage(options: TrainOptions, target: Target, output: Path, config: ModelConfig):
    """The pipeline a stage starts from: the folder's (or fresh components), with the variant's FCSD."""
    from reference.pipeline import ConsistentAvatarPipeline

    if not (output / "model_index.json").is_file():
        if target.variant or options.stage == "distill-lcm":
            raise CabenchError(f"{output} holds no pipeline (no model_index.json): train vae (tiny), stage2 and "
                               f"stage3 into it first")
        return ConsistentAvatarPipeline(**build_components(config, options.sd_path, options.seed),
                                        tsd_cutoff=PAPER_CUTOFF if options.tsd_cutoff is None else options.tsd_cutoff)
    if target.variant is None:
        pipe = ConsistentAvatarPipeline.from_pretrained(output, lcm_lora=False)
    elif options.stage == "distill-lcm" or (options.resume and (target.folder / "variant.json").is_file()):
        pipe = ConsistentAvatarPipeline.from_pretrained(output, ablation=target.variant, lcm_lora=False)
    else:
        pipe = ConsistentAvatarPipeline.from_pretrained(output, lcm_lora=False)
        fresh = build_components(config, options.sd_path, options.seed, variant=target.variant)
        pipe = ConsistentAvatarPipeline(**{**pipe.components, **{part: fresh[part] for part in FCSD_PARTS}},
                                        trained_ablation=target.variant, tsd_cutoff=pipe.config.tsd_cutoff)
    if target.guide == "tsdm":  # the aligned TSD is sampled as the pipeline renders: with TSDM's LCM-LoRA
        from reference.lcm import LORA_FOLDERS, load_lcm_lora

        if (output / LORA_FOLDERS["tsdm_unet"]).is_dir():
            load_lcm_lora(pipe.tsdm_unet, output / LORA_FOLDERS["tsdm_unet"])
    return pipe


def frame_emotions(pipe, data: SequenceData, emotion_db=None) -> tuple[torch.Tensor, list[str]]:
    """Per-frame emotion embeddings: labels from the expression database ``emotion_db`` (a folder, which
    then becomes the pipeline's, saved with it), else from the one the pipeline folder holds, else "neutral"."""
    if emotion_db is not None:
        from reference.emotion import ExpressionDatabase

        pipe.emotion_database = ExpressionDatabase.from_folder(emotion_db)
    labels = pipe.emotion_labels(None, len(data), data.expression)
    return pipe.embed_emotions(labels).float().cpu(), labels


def make_accelerator(mixed_precision: str = "no", device: str | None = None, gradient_accumulation_steps: int = 1):
    """An Accelerator on ``device`` (None: accelerate's choice: this process's GPU when there is one).
    In a single process an earlier one's settings (e.g. its precision) are dropped, so several
    trainings can run in one Python session; under `accelerate launch` / `torchrun` nothing is reset."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState, PartialState

    if device is not None and device not in DEVICES:
        raise CabenchError(f"--device {device!r}: choose cpu or cuda, or leave it out for accelerate's choice")
    if device == "cuda" and not torch.cuda.is_available():
        raise CabenchError("--device cuda: no CUDA device is available")
    if gradient_accumulation_steps < 1:
        raise CabenchError(f"--gradient-accumulation-steps must be at least 1, got {gradient_accumulation_steps}")
    if AcceleratorState._shared_state and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    # without a GPU accelerate runs on the CPU anyway, but starts several CPU processes (gloo) only with cpu=True
    cpu = device == "cpu" or (device is None and not torch.cuda.is_available())
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu, gradient_accumulation_steps=gradient_accumulation_steps)


class LossLog:
    """``step,loss`` lines in ``path``, written by the main process only, flushed line by line.
    A resumed run keeps the lines before its start step and drops the rest (steps it redoes)."""

    def __init__(self, path: Path, start: int, enabled: bool):
        self.file = None
        if not enabled:
            return
        kept = []
        if start and path.is_file():
            kept = [line for line in path.read_text().splitlines()[1:] if line and int(line.split(",")[0]) < start]
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "w")
        self.file.write("\n".join(["step,loss", *kept]) + "\n")
        self.file.flush()

    def write(self, step: int, loss: float) -> None:
        if self.file is not None:
            self.file.write(f"{step},{loss:.6f}\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def train(options: TrainOptions, data: SequenceData, output: str | Path, emotion_db=None) -> list[float]:
    """Run one stage; returns the loss of every step run in this call (see the module docstring)."""
    if options.stage not in STAGES:
        raise CabenchError(f"unknown stage {options.stage!r}; choose one of: {', '.join(STAGES)}")
    config = get_config(options.config)
    if options.stage == "vae" and config.name != "tiny":
        raise CabenchError("stage vae is only for the tiny config: sd15 uses the pretrained SD VAE")
    output = Path(output)
    target = stage_target(options, output)
    steps, batch_size, lr = options.resolved(config)
    accelerator = make_accelerator(options.mixed_precision, options.device, options.gradient_accumulation_steps)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
    fresh = not (output / "model_index.json").is_file()
    if fresh and config.name == "tiny" and options.stage != "vae" and accelerator.is_main_process:
        warnings.warn(f"{output} has no trained VAE: the tiny config has no pretrained autoencoder, so {options.stage} "
                      f"trains on a random one; run `cabench train vae --output {output}` first", CabenchWarning,
                      stacklevel=2)
    pipe = load_for_stage(options, target, output, config).to(accelerator.device)
    if options.tsd_cutoff is not None and float(pipe.config.tsd_cutoff) != float(options.tsd_cutoff):
        raise CabenchError(f"--tsd-cutoff {options.tsd_cutoff}: the pipeline in {output} was made with "
                           f"{pipe.config.tsd_cutoff} (its model_index.json tsd_cutoff); the TSD's cutoff is set "
                           "by the stage that makes the folder")
    check_resolution(pipe, data, options.stage == "vae" or fresh, output)
    if options.stage == "distill-lcm":
        from reference.lcm import ConsistencyDistillation, add_lcm_lora

        add_lcm_lora(getattr(pipe, target.lora_unet), options.lora_rank or config.lcm_lora_rank, options.seed)
        model = ConsistencyDistillation(pipe, options.component)
    else:
        model = StageModel(pipe, options.stage, config.train_unet_base, options.snr_gamma)
    if options.gradient_checkpointing:
        for module in (pipe.unet, pipe.tsdm_unet, pipe.controlnet, pipe.vae):
            if getattr(module, "_supports_gradient_checkpointing", False):
                module.enable_gradient_checkpointing()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model, optimizer = accelerator.prepare(model, optimizer)

    state_dir = output / "train_state" / target.state_name
    start = 0
    if options.resume and (state_dir / "step.json").is_file():
        accelerator.load_state(str(state_dir))
        start = json.loads((state_dir / "step.json").read_text())["step"]
    aligned = None
    if target.guide == "tsdm":
        from reference.tsd_cache import aligned_tsd

        aligned = aligned_tsd(pipe, data, output / "train_state", accelerator, options.seed, options.resume)
    emotions, _ = frame_emotions(pipe, data, emotion_db)
    shard = Shard(batch_size, accelerator.process_index, accelerator.num_processes,
                  options.gradient_accumulation_steps)
    log = LossLog(target.log_path, start, accelerator.is_main_process)
    losses = []
    bar = tqdm(range(start, steps), desc=target.state_name, disable=not (options.progress and accelerator.is_main_process))
    for step in bar:
        step_losses = []
        for micro_step in range(options.gradient_accumulation_steps):
            draw = StepDraw(options.seed, step, shard, micro_step)
            batch = make_batch(data, draw.frames(len(data)), emotions, accelerator.device)
            if target.guide is not None:
                batch["guide"] = guide_tsd(target.guide, batch, aligned, pipe.config.tsd_cutoff)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = model(batch, draw)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            step_losses.append(accelerator.reduce(loss.detach().float(), "mean"))
        value = float(torch.stack(step_losses).mean())
        if not math.isfinite(value):
            raise CabenchError(f"stage {options.stage}: loss became {value} at step {step}; lower --lr")
        losses.append(value)
        log.write(step, value)
        if options.save_every and (step + 1) % options.save_every == 0 and step + 1 < steps:
            save_checkpoint(accelerator, pipe, target, output, state_dir, step + 1, options)
    log.close()
    if options.stage == "vae":
        set_latent_scale(pipe, data, accelerator.device)
    save_checkpoint(accelerator, pipe, target, output, state_dir, steps, options)
    return losses


def check_resolution(pipe, data: SequenceData, sets_it: bool, output: Path) -> None:
    """The stage that makes the pipeline (``vae``, or any stage in a new folder) records the training
    resolution as the VAE's ``sample_size``; later stages must train at it."""
    size = data.image.shape[1]
    if sets_it:
        pipe.vae.register_to_config(sample_size=size)
    elif int(pipe.vae.config.sample_size) != size:
        raise CabenchError(f"the frames are {size} px but the pipeline in {output} was made at "
                           f"{pipe.vae.config.sample_size} px (its vae sample_size); pass --size "
                           f"{pipe.vae.config.sample_size}")


@torch.no_grad()
def set_latent_scale(pipe, data: SequenceData, device) -> None:
    """scaling_factor = 1 / std of the (unscaled) latents of the training frames (SD convention)."""
    pipe.vae.register_to_config(scaling_factor=1.0)
    idx = np.arange(min(len(data), 64))
    batch = make_batch(data, idx, torch.zeros(len(data), 1), device)
    latents = torch.cat([pipe.encode_latents(batch["image"]), pipe.encode_latents(pipe.tsd_of(batch["image"]))])
    pipe.vae.register_to_config(scaling_factor=float(1.0 / latents.std()))


def forget_load_path(module) -> None:
    """Drop ``_name_or_path`` (the folder a model was loaded from, which diffusers writes into its config)
    from ``module``'s config. A variant's parts are built fresh by an uninterrupted run and loaded from the
    variant's folder by a resumed one; without this the two would write different configs for the same
    weights. diffusers keeps a model's config in the frozen ``_internal_dict`` and offers no removal."""
    from diffusers.configuration_utils import FrozenDict

    module._internal_dict = FrozenDict({k: v for k, v in module.config.items() if k != "_name_or_path"})


def save_target(pipe, target: Target, output: Path, options: TrainOptions) -> None:
    """Write what the stage trained: the whole pipeline into a new folder, else its parts (or its
    LCM-LoRA), dropping an LCM-LoRA distilled from weights this stage replaced."""
    from reference.ablations import write_variant_record
    from reference.lcm import LORA_FOLDERS, save_lcm_lora
    from reference.pipeline import EMOTION_DB

    if pipe.emotion_database is not None:  # the labels the FCSD trained with label frames at inference too
        pipe.emotion_database.save(output / EMOTION_DB)
    if target.lora_unet is not None:
        save_lcm_lora(getattr(pipe, target.lora_unet), target.folder / LORA_FOLDERS[target.lora_unet])
        return
    if not (output / "model_index.json").is_file():
        pipe.save_pretrained(output)
    else:
        for part in target.parts:
            module = getattr(pipe, part)
            if target.variant is not None:
                forget_load_path(module)
            module.save_pretrained(target.folder / part)
    for part in set(target.parts) & set(LORA_FOLDERS):
        stale = target.folder / LORA_FOLDERS[part]
        if stale.is_dir():
            shutil.rmtree(stale)
            print(f"note: removed {stale}: it was distilled from the {part} weights this stage replaced")
    if target.variant is not None:
        write_variant_record(target.folder, target.variant, stage3_tsd=target.guide, seed=options.seed,
                             config=options.config, snr_gamma=options.snr_gamma,
                             aliases=[a for a, v in ALIASES.items() if v == target.variant])


def save_checkpoint(accelerator, pipe, target: Target, output: Path, state_dir: Path, step: int,
                    options: TrainOptions) -> None:
    """The stage's weights (main process) and the resumable state into ``state_dir``."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_target(pipe, target, output, options)
        state_dir.mkdir(parents=True, exist_ok=True)
    accelerator.save_state(str(state_dir))
    if accelerator.is_main_process:
        (state_dir / "step.json").write_text(json.dumps({"step": step}))
