"""Per-stage timing of the reference pipeline (what `cabench time` runs).

Per frame, in milliseconds: ``tsd`` (TSD of the stage-1 RGB), ``tsdm`` (stage-2 sampling with the
same scheduler and step count, decode included), ``conditions`` (emotion lookup, E and the linear
layers), ``unet_controlnet_step`` (one FCSD step: ControlNet + UNet + scheduler), ``vae_decode``
and ``refiner`` (0 without a refiner), and ``total`` (the sum, with the per-step time multiplied by
the step count). Each measurement is bracketed by device synchronisation; warm-up runs are
excluded; each (scheduler, steps) is repeated and reported row by row (take the median).
Random weights are fine: speed does not depend on their values. ``sd15`` without a folder builds
the SD 1.5 architecture from its published configuration.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from metrics.errors import CabenchError

STAGES = ("tsd", "tsdm", "conditions", "unet_controlnet_step", "vae_decode", "refiner")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    sample_size=512, scaling_factor=0.18215,
)


def sd15_random_components() -> dict:
    """SD 1.5-sized components with random weights (for timing only; nothing is loaded)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from reference.config import tiny_scheduler
    from reference.models import ConditionEncoder, DecoupledUNet2DConditionModel
    from reference.tokenizer import BOS_ID, EOS_ID, TINY_VOCAB_SIZE, tiny_clip_tokenizer

    base = UNet2DConditionModel(**SD15_UNET)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=TINY_VOCAB_SIZE, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID))
    return dict(
        vae=AutoencoderKL(**SD15_VAE), text_encoder=text, tokenizer=tiny_clip_tokenizer(77),
        tsdm_unet=DecoupledUNet2DConditionModel.from_unet(base, 256),
        tsdm_encoder=ConditionEncoder(256, "resnet18"),
        unet=DecoupledUNet2DConditionModel.from_unet(base, 256),
        controlnet=ControlNetModel.from_unet(base, conditioning_channels=6),
        fcsd_encoder=ConditionEncoder(256, "resnet18", emotion_dim=768), scheduler=tiny_scheduler(),
    )


def timing_pipeline(config: str, device: str = "cpu", dtype: str = "fp32", channels_last: bool = False,
                    compile: bool = False, sd_path=None, checkpoint=None):
    """The pipeline to time: a checkpoint folder, the SD 1.5 folder, or random weights of ``config``."""
    from reference.config import build_components
    from reference.pipeline import ConsistentAvatarPipeline

    if dtype not in DTYPES:
        raise CabenchError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CabenchError(f"device {device!r} requested but CUDA is not available")
    if checkpoint is not None:
        from reference.render import resolve_checkpoint

        pipe = ConsistentAvatarPipeline.from_pretrained(resolve_checkpoint(checkpoint))
    elif config == "sd15" and sd_path is None:
        pipe = ConsistentAvatarPipeline(**sd15_random_components())
    elif config in ("tiny", "sd15"):
        pipe = ConsistentAvatarPipeline(**build_components(config, sd_path))
    else:
        raise CabenchError(f"unknown config {config!r}; choose tiny or sd15")
    pipe = pipe.to(device)
    if dtype != "fp32":
        pipe = pipe.to(dtype=DTYPES[dtype])
    pipe.set_progress_bar_config(disable=True)
    if channels_last:
        for module in (pipe.unet, pipe.controlnet, pipe.vae, pipe.tsdm_unet):
            module.to(memory_format=torch.channels_last)
    if compile:
        pipe.unet = torch.compile(pipe.unet, fullgraph=False)
        pipe.controlnet = torch.compile(pipe.controlnet, fullgraph=False)
        pipe.vae.decode = torch.compile(pipe.vae.decode)
    return pipe


@contextmanager
def _timer(out: dict, key: str, device: torch.device):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    yield
    sync()
    out[key] = out.get(key, 0.0) + (time.perf_counter() - start) * 1000


@torch.no_grad()
def time_once(pipe, scheduler_kind: str, steps: int, batch: int, generator_seed: int = 0) -> dict:
    """One timed render of ``batch`` frames; per-frame milliseconds of each stage and the total."""
    from reference.schedulers import make_scheduler
    from reference.tsd import tsd

    device = pipe.unet.device
    size = int(pipe.vae.config.sample_size)
    g = torch.Generator().manual_seed(generator_seed)
    rgb, normal = torch.rand(batch, 3, size, size, generator=g), torch.rand(batch, 3, size, size, generator=g)
    pose, expression = torch.randn(batch, 6, generator=g), torch.randn(batch, 100, generator=g)
    rgb, normal, pose, expression = (x.to(device) for x in (rgb, normal, pose, expression))
    pipe.text_context(batch)
    pipe.embed_emotions(["neutral"])
    ms: dict[str, float] = {}
    with _timer(ms, "tsd", device):
        proxy = tsd(rgb)
    with _timer(ms, "tsdm", device):
        guide = pipe.align_tsd(proxy, pose, expression, steps, g, make_scheduler(scheduler_kind, pipe.scheduler.config))
    with _timer(ms, "conditions", device):
        emotions = pipe.embed_emotions(["neutral"] * batch).float()
        control = torch.cat([normal, guide], dim=1).to(pipe.unet.dtype)
        f_d = pipe.fcsd_encoder(guide, pose, expression, emotions).to(pipe.unet.dtype)
    scheduler = make_scheduler(scheduler_kind, pipe.scheduler.config)
    scheduler.set_timesteps(steps, device=device)
    factor = pipe.vae_scale_factor
    latents = torch.randn(batch, pipe.unet.config.in_channels, size // factor, size // factor, generator=g)
    latents = latents.to(device, pipe.unet.dtype) * scheduler.init_noise_sigma
    denoise = pipe.fcsd_denoiser(control, f_d, pipe.text_context(batch))
    with _timer(ms, "unet_controlnet_step", device):
        for t in scheduler.timesteps:
            latents = scheduler.step(denoise(scheduler.scale_model_input(latents, t), t), t, latents,
                                     return_dict=False)[0]
    ms["unet_controlnet_step"] /= steps
    with _timer(ms, "vae_decode", device):
        images = pipe.decode_latents(latents)
    ms["refiner"] = 0.0
    if pipe.refiner is not None:
        with _timer(ms, "refiner", device):
            pipe.refine(images, 0.2, 4)
    per_frame = {k: v / batch for k, v in ms.items()}
    per_frame["total"] = sum(per_frame[k] for k in STAGES if k != "unet_controlnet_step") + \
        per_frame["unet_controlnet_step"] * steps
    return per_frame


def stock_controlnet_pipeline(pipe):
    """diffusers' stock StableDiffusionControlNetPipeline over the same VAE, ControlNet and UNet weights
    (the UNet as a plain UNet2DConditionModel: no decoupled branch), for a like-for-like comparison."""
    from diffusers import StableDiffusionControlNetPipeline, UNet2DConditionModel

    config = {k: v for k, v in pipe.unet.config.items() if k != "condition_dim"}
    unet = UNet2DConditionModel.from_config(config)
    unet.load_state_dict({k: v for k, v in pipe.unet.state_dict().items() if ".to_k_c." not in k and ".to_v_c." not in k})
    unet = unet.to(pipe.unet.device, pipe.unet.dtype)
    if pipe.unet.device.type == "cuda":
        unet = unet.to(memory_format=torch.channels_last)
    stock = StableDiffusionControlNetPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=unet, controlnet=pipe.controlnet,
        scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    return stock


@torch.no_grad()
def time_stock(stock, pipe, scheduler_kind: str, steps: int, batch: int) -> float:
    """Per-frame ms of the stock pipeline's call (ControlNet + UNet steps + VAE decode), no guidance,
    prompt embeddings precomputed (the same empty-prompt context the reference pipeline caches)."""
    from reference.schedulers import make_scheduler

    stock.scheduler = make_scheduler(scheduler_kind, pipe.scheduler.config)
    size = int(pipe.vae.config.sample_size)
    device = pipe.unet.device
    control = torch.rand(batch, 6, size, size, generator=torch.Generator().manual_seed(0)).to(device, pipe.unet.dtype)
    ms: dict[str, float] = {}
    with _timer(ms, "stock", device):
        stock(prompt_embeds=pipe.text_context(batch), image=control, num_inference_steps=steps, guidance_scale=1.0,
              height=size, width=size, output_type="pt", generator=torch.Generator().manual_seed(0))
    return ms["stock"] / batch


def time_pipeline(pipe, schedulers=("lcm",), steps=(1, 2, 4, 8, 10), batch: int = 1, repeats: int = 3,
                  warmup: int = 1, progress: bool = False, compare_stock: bool = False):
    """Rows (scheduler, steps, repeat, stage columns..., total) in per-frame milliseconds; with
    ``compare_stock`` also ``stock_controlnet`` (diffusers' pipeline) and ``ours_controlnet``
    (our UNet+ControlNet steps + VAE decode: the same work)."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows = []
    stock = stock_controlnet_pipeline(pipe) if compare_stock else None
    jobs = [(s, n) for s in schedulers for n in steps]
    for kind, n in tqdm(jobs, desc="time", disable=not progress):
        for _ in range(warmup):
            time_once(pipe, kind, n, batch)
            if stock is not None:
                time_stock(stock, pipe, kind, n, batch)
        for r in range(repeats):
            row = {"scheduler": kind, "steps": n, "repeat": r, "batch": batch, **time_once(pipe, kind, n, batch, r)}
            if stock is not None:
                row["ours_controlnet"] = row["unet_controlnet_step"] * n + row["vae_decode"]
                row["stock_controlnet"] = time_stock(stock, pipe, kind, n, batch)
            rows.append(row)
    return pd.DataFrame(rows)


def plot_times(frame, path) -> None:
    """Median per-frame total (and UNet+ControlNet share) against steps, one line per scheduler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = frame.groupby(["scheduler", "steps"]).median(numeric_only=True).reset_index()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for kind, part in med.groupby("scheduler"):
        ax.plot(part["steps"], part["total"], marker="o", label=f"{kind}: total")
        ax.plot(part["steps"], part["unet_controlnet_step"] * part["steps"], ls="--", label=f"{kind}: UNet+ControlNet")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("ms per frame (median)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
