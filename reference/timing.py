"""Per-stage timing of the reference pipeline, and the comparison with diffusers' stock pipelines.

Units: every time here is milliseconds per frame, and every column that holds one ends in ``_ms``.

:func:`time_once` renders one batch of frames through the pipeline's own stage methods, in the
order ``__call__`` runs them, timing each: ``constants_ms`` (the empty-prompt context and the
emotion embeddings, computed once per batch, as ``render_sequence`` does once per sequence),
``tsd_ms``, ``tsdm_ms`` (stage-2 sampling and decode), ``conditions_ms`` (E and the linear layers),
``fcsd_ms`` (every FCSD step: ControlNet + UNet + scheduler) and ``fcsd_step_ms`` (one step),
``vae_decode_ms``, ``refiner_ms`` (0 without a refiner) and ``total_ms`` (the sum). Each is
bracketed by device synchronisation; warm-up runs are excluded.

The stock comparison (``compare_stock``) runs diffusers' own pipelines over the same module objects
(so channels-last and ``torch.compile`` apply to both sides) and the same per-frame generators,
which makes their frames equal to ours up to float rounding (:func:`render_stock` returns them for
the test that checks it), twice: frame by frame (one call per frame, as a diffusers user renders a
video frame by frame) and given the same batch in one call (a list of prompts and generators, as
ours renders it; the condition tokens then go in as ``cross_attention_kwargs``, since diffusers
repeats one set of IP-adapter embeddings for every prompt of a call), so that what batching gains and what our pipeline itself gains are told apart.
Two rows are compared, each against both stock runs:

* whole pipeline: ours (:func:`time_once`'s ``total_ms``) against, per frame, TSD, diffusers'
  ``StableDiffusionPipeline`` as the TSDM (``ip_adapter_image_embeds=[f_c]``), the emotion
  embedding and condition encoder, and ``StableDiffusionControlNetPipeline`` as the FCSD
  (``ip_adapter_image_embeds=[f_d]``), each called with ``prompt=""`` as a diffusers user would;
* FCSD subset: our FCSD steps and decode against ``StableDiffusionControlNetPipeline`` alone, both
  given the same control condition and f_d.

Random weights are fine for speed. ``sd15`` without a folder builds the SD 1.5 architecture from its
published configuration.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

from metrics.errors import CabenchError

STAGES = ("constants", "tsd", "tsdm", "conditions", "fcsd", "vae_decode", "refiner")
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
    """SD 1.5-sized components with random weights (for timing and sizes only; nothing is loaded)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from reference.config import assemble_components, get_config, tiny_scheduler
    from reference.tokenizer import BOS_ID, EOS_ID, TINY_VOCAB_SIZE, tiny_clip_tokenizer

    text = CLIPTextModel(CLIPTextConfig(vocab_size=TINY_VOCAB_SIZE, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID))
    return assemble_components(get_config("sd15"), UNet2DConditionModel(**SD15_UNET), AutoencoderKL(**SD15_VAE), text,
                               tiny_clip_tokenizer(77), tiny_scheduler())


def timing_pipeline(config: str, device: str = "cpu", dtype: str = "fp32", channels_last: bool = False,
                    compile: bool = False, sd_path=None, checkpoint=None):
    """The pipeline to time: a checkpoint folder, the SD 1.5 folder, or random weights of ``config``.

    ``channels_last`` and ``compile`` change the modules themselves (``nn.Module.compile`` keeps the
    module object), so the stock pipelines built on them by :func:`stock_pipelines` get them too.
    """
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
        for module in (pipe.unet, pipe.controlnet, pipe.tsdm_unet, pipe.vae.decoder):
            module.compile()
    return pipe


@contextmanager
def _timer(out: dict, key: str, device: torch.device):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    yield
    sync()
    out[key] = out.get(key, 0.0) + (time.perf_counter() - start) * 1000


def timing_inputs(batch: int, size: int, seed: int = 0) -> dict:
    """Random stage-1 inputs of ``batch`` frames at ``size`` px (speed does not depend on the values); no
    emotion labels: every path takes the pipeline's own (:func:`frame_labels`), as ``pipe(...)`` does."""
    g = torch.Generator().manual_seed(seed)
    return dict(rgb=torch.rand(batch, 3, size, size, generator=g), normal=torch.rand(batch, 3, size, size, generator=g),
                pose=torch.randn(batch, 6, generator=g) * 0.1, expression=torch.randn(batch, 100, generator=g),
                labels=None)


def frame_labels(pipe, inputs: dict, part=slice(None)) -> list[str]:
    """The emotion labels of ``inputs``' frames ``part``: its ``labels`` when given, else the pipeline's
    (its emotion database's labels by expression, or neutral), which ``pipe(...)`` uses without a label."""
    expression = inputs["expression"][part]
    if inputs.get("labels") is not None:
        return list(inputs["labels"][part])
    return pipe.emotion_labels(None, len(expression), expression)


def frame_generators(count: int, seed: int = 0) -> list[torch.Generator]:
    """Frame i's generator, seeded with ``seed + i`` (as ``render_sequence`` seeds them)."""
    return [torch.Generator().manual_seed(seed + i) for i in range(count)]


@torch.no_grad()
def render_timed(pipe, inputs: dict, scheduler_kind: str, steps: int, seed: int = 0,
                 lcm_lora: bool = True) -> tuple[dict, torch.Tensor]:
    """Render one batch through the pipeline's stage methods, in ``__call__``'s order, timing each stage.

    Returns (milliseconds per stage for the whole batch, frames (N,3,H,W) in [0,1]); the frames are
    those ``pipe(..., generator=frame_generators(N, seed), lcm_lora=lcm_lora)`` gives with this sampler.
    """
    from reference.schedulers import make_scheduler

    device = pipe._execution_device
    scheduler = make_scheduler(scheduler_kind, pipe.scheduler.config)
    generators = frame_generators(len(inputs["rgb"]), seed)
    rgb, normal, pose, expression = (inputs[k].to(device) for k in ("rgb", "normal", "pose", "expression"))
    ms: dict[str, float] = {}
    with _timer(ms, "constants", device):
        context = pipe.encode_empty_prompt()
        emotions = pipe.embed_emotions(frame_labels(pipe, inputs)).float()
    with _timer(ms, "tsd", device):
        proxy = pipe.tsd_of(rgb)
    with _timer(ms, "tsdm", device):
        guide = pipe.align_tsd(proxy, pose, expression, steps, generators, scheduler, context, lcm_lora=lcm_lora)
    with _timer(ms, "conditions", device):
        control, f_d = pipe.fcsd_condition(normal, guide, pose, expression, emotions)
    with _timer(ms, "fcsd", device):
        latents = pipe.sample_fcsd(control, f_d, steps, generators, scheduler, context, lcm_lora=lcm_lora)
    with _timer(ms, "vae_decode", device):
        images = pipe.decode_latents(latents)
    ms["refiner"] = 0.0
    if pipe.refiner is not None:
        with _timer(ms, "refiner", device):
            images = pipe.refine(images, 0.2, 4)
    return ms, images


def time_once(pipe, scheduler_kind: str, steps: int, batch: int, seed: int = 0, size: int | None = None,
              lcm_lora: bool = True) -> dict:
    """One timed render of ``batch`` frames: per-frame milliseconds of each stage (``*_ms``) and the total."""
    size = size or int(pipe.vae.config.sample_size)
    ms, _ = render_timed(pipe, timing_inputs(batch, size, seed), scheduler_kind, steps, seed, lcm_lora)
    per_frame = {f"{k}_ms": v / batch for k, v in ms.items()}
    per_frame["fcsd_step_ms"] = per_frame["fcsd_ms"] / steps
    per_frame["total_ms"] = sum(per_frame[f"{k}_ms"] for k in STAGES)
    return per_frame


def stock_pipelines(pipe):
    """diffusers' ``StableDiffusionPipeline`` over the TSDM UNet and ``StableDiffusionControlNetPipeline``
    over the FCSD UNet and ControlNet: the same module objects as ``pipe`` (no copy)."""
    from diffusers import StableDiffusionControlNetPipeline, StableDiffusionPipeline

    shared = dict(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, safety_checker=None,
                  feature_extractor=None, requires_safety_checker=False)
    tsdm = StableDiffusionPipeline(unet=pipe.tsdm_unet, scheduler=pipe.scheduler, **shared)
    fcsd = StableDiffusionControlNetPipeline(unet=pipe.unet, controlnet=pipe.controlnet, scheduler=pipe.scheduler,
                                             **shared)
    for stock in (tsdm, fcsd):
        stock.set_progress_bar_config(disable=True)
    return tsdm, fcsd


def _stock_call(stock, scheduler_kind: str, training_config, size: int, steps: int, generator, **inputs):
    """One stock call on the frames of ``generator`` (one generator: one frame; a list: one per frame,
    as many as the inputs' rows); an LCM-LoRA on its UNet is on for LCM and off otherwise, as in our
    pipeline."""
    from reference.lcm import lcm_weights
    from reference.schedulers import is_lcm, make_scheduler

    count = len(generator) if isinstance(generator, list) else 1
    stock.scheduler = make_scheduler(scheduler_kind, training_config)
    with lcm_weights([stock.unet], enabled=is_lcm(stock.scheduler)):
        return stock(prompt=[""] * count, num_inference_steps=steps, guidance_scale=1.0, height=size, width=size,
                     generator=generator, output_type="pt", **inputs).images


def _frame_groups(count: int, batched: bool) -> list[slice]:
    """The frames of each stock call: all in one call (``batched``), else one call per frame."""
    return [slice(0, count)] if batched else [slice(i, i + 1) for i in range(count)]


def _call_generators(generators: list, part: slice, batched: bool):
    return generators[part] if batched else generators[part][0]


def _condition_kwargs(tokens: torch.Tensor, batched: bool) -> dict:
    """The condition tokens as a stock call takes them: diffusers' IP-adapter embeddings for one frame;
    for a batch, the attention kwargs the decoupled UNet reads (``ip_adapter_image_embeds`` are one
    set per call, repeated for every prompt, so frames with their own tokens cannot share a call)."""
    if batched:
        return {"cross_attention_kwargs": {"condition_tokens": tokens}}
    return {"ip_adapter_image_embeds": [tokens]}


@torch.no_grad()
def render_stock(pipe, stock: tuple, inputs: dict, scheduler_kind: str, steps: int, seed: int = 0,
                 ms: dict | None = None, batched: bool = False) -> torch.Tensor:
    """The whole pipeline on diffusers' stock pipelines, frame by frame, or with ``batched`` the whole
    batch in one call of each (as ours renders it); frames (N,3,H,W) in [0,1].

    ``ms`` (optional) receives the milliseconds of the whole run under ``"stock_total"`` (frame by
    frame) or ``"stock_batch_total"`` (batched).
    """
    tsdm, fcsd = stock
    device = pipe._execution_device
    size, count = inputs["rgb"].shape[-1], len(inputs["rgb"])
    generators = frame_generators(count, seed)
    frames, ms = [], {} if ms is None else ms
    with _timer(ms, "stock_batch_total" if batched else "stock_total", device):
        for part in _frame_groups(count, batched):
            generator = _call_generators(generators, part, batched)
            rgb, normal, pose, expression = (inputs[k][part].to(device) for k in ("rgb", "normal", "pose", "expression"))
            f_c = pipe.tsdm_encoder(pipe.tsd_of(rgb), pose, expression).to(pipe.tsdm_unet.dtype)
            guide = _stock_call(tsdm, scheduler_kind, pipe.scheduler.config, size, steps, generator,
                                **_condition_kwargs(f_c, batched)).float()
            emotion = pipe.embed_emotions(frame_labels(pipe, inputs, part)).float()
            control, f_d = pipe.fcsd_condition(normal, guide, pose, expression, emotion)
            frames.append(_stock_call(fcsd, scheduler_kind, pipe.scheduler.config, size, steps, generator,
                                      image=control, **_condition_kwargs(f_d, batched)).float())
    return torch.cat(frames)


@torch.no_grad()
def ours_fcsd(pipe, control: torch.Tensor, f_d: torch.Tensor, scheduler_kind: str, steps: int,
              seed: int = 0) -> torch.Tensor:
    """Our FCSD steps and decode on a batch of conditions; frames (N,3,H,W) in [0,1]."""
    from reference.schedulers import make_scheduler

    scheduler = make_scheduler(scheduler_kind, pipe.scheduler.config)
    latents = pipe.sample_fcsd(control, f_d, steps, frame_generators(control.shape[0], seed), scheduler,
                               pipe.encode_empty_prompt())
    return pipe.decode_latents(latents)


@torch.no_grad()
def stock_fcsd(pipe, stock: tuple, control: torch.Tensor, f_d: torch.Tensor, scheduler_kind: str, steps: int,
               seed: int = 0, batched: bool = False) -> torch.Tensor:
    """The stock ControlNet pipeline on the same conditions, once per frame or (``batched``) once for
    the batch; frames (N,3,H,W) in [0,1]."""
    generators = frame_generators(control.shape[0], seed)
    return torch.cat([
        _stock_call(stock[1], scheduler_kind, pipe.scheduler.config, control.shape[-1], steps,
                    _call_generators(generators, part, batched), image=control[part],
                    **_condition_kwargs(f_d[part], batched)).float()
        for part in _frame_groups(control.shape[0], batched)])


def fcsd_subset(pipe, stock: tuple, control: torch.Tensor, f_d: torch.Tensor, scheduler_kind: str, steps: int,
                seed: int = 0) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    """FCSD + decode on the same conditions: ours batched, the stock ControlNet pipeline per frame and
    batched.

    Returns (milliseconds ``ours_fcsd`` / ``stock_fcsd`` / ``stock_batch_fcsd`` for the batch, our
    frames, the stock frames per frame, the stock frames batched).
    """
    device = pipe._execution_device
    control, f_d = control.to(device, pipe.unet.dtype), f_d.to(device, pipe.unet.dtype)
    ms: dict[str, float] = {}
    with _timer(ms, "ours_fcsd", device):
        ours = ours_fcsd(pipe, control, f_d, scheduler_kind, steps, seed)
    with _timer(ms, "stock_fcsd", device):
        theirs = stock_fcsd(pipe, stock, control, f_d, scheduler_kind, steps, seed)
    with _timer(ms, "stock_batch_fcsd", device):
        batched = stock_fcsd(pipe, stock, control, f_d, scheduler_kind, steps, seed, batched=True)
    return ms, ours, theirs, batched


def time_compare(pipe, stock: tuple, scheduler_kind: str, steps: int, batch: int, seed: int = 0,
                 size: int | None = None) -> dict:
    """Per-frame ms of ours and stock, whole pipeline and FCSD subset, on the same inputs and seeds."""
    size = size or int(pipe.vae.config.sample_size)
    inputs = timing_inputs(batch, size, seed)
    ms: dict[str, float] = {}
    render_stock(pipe, stock, inputs, scheduler_kind, steps, seed, ms)
    render_stock(pipe, stock, inputs, scheduler_kind, steps, seed, ms, batched=True)
    g = torch.Generator().manual_seed(seed + 1)
    control = torch.rand(batch, 6, size, size, generator=g)
    f_d = torch.randn(batch, pipe.fcsd_encoder.num_tokens, pipe.unet.config.condition_dim, generator=g)
    subset, _, _, _ = fcsd_subset(pipe, stock, control, f_d, scheduler_kind, steps, seed)
    return {f"{k}_ms": v / batch for k, v in {**ms, **subset}.items()}


def load_warning(threads: int, own_load: float = 0.0) -> str | None:
    """A warning when the machine's 1-minute load leaves fewer idle cores than ``threads`` (timings then
    measure the competition); ``own_load`` is this process's share of the load, subtracted."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None
    others = max(0.0, load - own_load)
    if cores - others < threads:
        return (f"load average {load:.1f} on {cores} cores leaves fewer than the {threads} thread(s) this timing "
                "uses idle: other processes compete for the CPU and the times are unreliable")
    return None


def lora_settings(scheduler: str, lcm_lora=("on",)) -> tuple[str, ...]:
    """The LCM-LoRA settings a sampler's rows run with: LCM's are ``lcm_lora`` ("on": the checkpoint's
    LCM-LoRA samples, as the pipeline does by default; "off": the undistilled weights); every other
    sampler never uses the LoRA, so its rows are "off" only."""
    return tuple(lcm_lora) if scheduler == "lcm" else ("off",)


def time_pipeline(pipe, schedulers=("lcm",), steps=(1, 2, 4, 8, 10), batch: int = 8, repeats: int = 3,
                  warmup: int = 1, progress: bool = False, compare_stock: bool = False, size: int | None = None,
                  lcm_lora=("on",)):
    """Rows (scheduler, lora, steps, repeat, batch, size, device, dtype, threads, load_avg, ``*_ms`` ...)
    in per-frame milliseconds; ``lora`` is "on" or "off" (:func:`lora_settings`; LCM is timed once per
    setting in ``lcm_lora``). With ``compare_stock`` also ``stock_total_ms``, ``stock_batch_total_ms``,
    ``ours_fcsd_ms``, ``stock_fcsd_ms`` and ``stock_batch_fcsd_ms`` (see the module docstring), on the rows
    with the pipeline's default weights (LCM with the LoRA on, other samplers); empty on LCM's LoRA-off rows."""
    import pandas as pd
    from tqdm.auto import tqdm

    size = size or int(pipe.vae.config.sample_size)
    stock = stock_pipelines(pipe) if compare_stock else None
    meta = dict(batch=batch, size=size, device=str(pipe._execution_device), dtype=str(pipe.unet.dtype).replace("torch.", ""),
                threads=torch.get_num_threads())
    rows = []
    jobs = [(s, lora, n) for s in schedulers for lora in lora_settings(s, lcm_lora) for n in steps]
    for kind, lora, n in tqdm(jobs, desc="time", disable=not progress):
        on = lora == "on"
        compare = stock is not None and (on or kind != "lcm")
        for _ in range(warmup):
            time_once(pipe, kind, n, batch, size=size, lcm_lora=on)
            if compare:
                time_compare(pipe, stock, kind, n, batch, size=size)
        for r in range(repeats):
            row = {"scheduler": kind, "lora": lora, "steps": n, "repeat": r, **meta, "load_avg": _load_average()}
            row.update(time_once(pipe, kind, n, batch, r, size, lcm_lora=on))
            if compare:
                row.update(time_compare(pipe, stock, kind, n, batch, r, size))
            rows.append(row)
    return pd.DataFrame(rows)


def _load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def speedups(frame):
    """Ours against stock per scheduler and steps, rows ``whole pipeline`` and ``FCSD + decode``, each with
    the stock pipelines called frame by frame and given the same batch in one call: median ms per
    frame of each side, and the speed-up (stock / ours) of each repeat summarised by its median, min
    and max (ours and stock of one repeat run back to back, so their ratio is steadier than the times
    when the machine's load drifts). Rows timed without the stock side (LCM with the LoRA off) are left out."""
    import pandas as pd

    frame = frame[frame["stock_total_ms"].notna()]  # LCM's LoRA-off rows have no stock side
    parts = []
    for label, stock_calls, ours, stock in (
            ("whole pipeline", "per frame", "total_ms", "stock_total_ms"),
            ("whole pipeline", "same batch", "total_ms", "stock_batch_total_ms"),
            ("FCSD + decode", "per frame", "ours_fcsd_ms", "stock_fcsd_ms"),
            ("FCSD + decode", "same batch", "ours_fcsd_ms", "stock_batch_fcsd_ms")):
        rows = frame.assign(speedup=frame[stock] / frame[ours]).groupby(["scheduler", "steps"])
        part = pd.DataFrame({"comparison": label, "stock_calls": stock_calls, "ours_ms": rows[ours].median(),
                             "stock_ms": rows[stock].median(),
                             "speedup": rows["speedup"].median(), "speedup_min": rows["speedup"].min(),
                             "speedup_max": rows["speedup"].max()})
        parts.append(part.reset_index())
    return pd.concat(parts, ignore_index=True)
