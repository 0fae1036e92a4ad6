"""`render_sequence`: the one-call entry the baselines adapter, `cabench infer` and the demo use.

Frames are processed in batches; frame i's noise comes from its own generator seeded with
``seed + i``, so the output does not depend on ``batch_size`` (up to float rounding of batched
kernels). The per-sequence constants (the empty-prompt CLIP context, the embedding of each distinct
emotion label) are computed once per sequence, not per batch.

Several processes (``accelerate launch`` or ``torchrun``), with ``across_processes=True``: every
process calls ``render_sequence`` with the same sequence, the batches are split between the
processes in order (accelerate's ``split_between_processes``), each renders its share on its own
device (``device="auto"``: accelerate's device for the process), and every process gets all frames
back (``gather_object``). Each batch is the same computation as in one process, so the frames are
those of a single-process run, up to one grey level where a process's kernels round differently in
the last bit (measured: 1 value in 12,288 of one frame of five). It is off by default: a caller that gives each process different
work (``cabench run`` spreads (sequence, method) pairs over the processes) must render locally.

Loading (:func:`load_pipeline`): ``"tiny"`` names the shipped checkpoint; a folder saved with
``variant="fp16"`` only is found without being told; ``dtype`` ("fp32", "fp16", "bf16") is the
dtype the models run in; ``ablation`` loads a trained variant (its FCSD parts from
``ablations/<name>/``). The most recently loaded pipeline is kept, so the rows that render one
pipeline (the full model, ``wo_lcm`` and the zero-input switches) share one copy in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from metrics.errors import CabenchError, InputError, WeightsMissingError
from reference.ablations import check_ablation, trained_variant
from reference.schedulers import SCHEDULERS

TINY_CHECKPOINT = Path(__file__).parent / "checkpoints" / "tiny"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_LAST_LOADED: dict[tuple, object] = {}  # at most one entry: the most recently loaded pipeline


def resolve_checkpoint(checkpoint) -> Path:
    """``"tiny"`` names the shipped checkpoint; anything else is a pipeline folder."""
    path = TINY_CHECKPOINT if str(checkpoint) == "tiny" else Path(checkpoint)
    if not (path / "model_index.json").is_file():
        raise WeightsMissingError(f"checkpoint {path} is not a pipeline folder (no model_index.json); "
                                  "make one with `cabench train` or pass 'tiny' for the shipped one")
    return path


def process_state(device: str = "auto"):
    """accelerate's state of this process. On a CPU (asked for, or ``"auto"`` without an accelerator)
    it is made with ``cpu=True``, so that CPU processes started by ``torchrun`` or ``accelerate launch``
    are seen as several (accelerate looks for them only then)."""
    from accelerate import PartialState

    return PartialState(cpu=str(device) == "cpu" or (str(device) == "auto" and not torch.accelerator.is_available()))


def resolve_device(device: str = "auto", what: str = "device") -> torch.device:
    """``"auto"``: this process's device under accelerate (its GPU when launched on several), else the
    best available; any other name as :func:`metrics.device.resolve_device` gives it (cpu, cuda,
    cuda:N; CUDA checked to be there). ``what`` names the option or setting in errors."""
    from metrics.device import check_device
    from metrics.device import resolve_device as resolve_named

    if check_device(device, what) == "auto":
        return process_state(device).device
    return resolve_named(device, what)


def weights_variant(path: Path) -> str | None:
    """``"fp16"`` (or another variant) when the folder's UNet holds only variant weight files."""
    unet = path / "unet"
    if not unet.is_dir() or any(unet.glob("diffusion_pytorch_model.safetensors")) or any(unet.glob("*.bin")):
        return None
    variants = sorted({p.name.split(".")[-2] for p in unet.glob("diffusion_pytorch_model.*.safetensors")})
    return variants[0] if len(variants) == 1 else None


@contextmanager
def library_progress_bars(enabled: bool) -> Iterator[None]:
    """diffusers' and transformers' own progress bars (loading components and weights) on or off for
    the block, each library's setting restored afterwards (a ``--quiet`` command shows none)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = (diffusers_logging, transformers_logging)
    before = [library.is_progress_bar_enabled() for library in libraries]
    for library in libraries:
        library.enable_progress_bar() if enabled else library.disable_progress_bar()
    try:
        yield
    finally:
        for library, was in zip(libraries, before):
            library.enable_progress_bar() if was else library.disable_progress_bar()


def load_pipeline(checkpoint, device: str = "auto", dtype: str | None = None, variant: str | None = None,
                  ablation: str | None = None, progress: bool = True):
    """Load a ConsistentAvatarPipeline from a folder (or take a pipeline object) onto ``device``;
    ``progress=False`` silences diffusers' and transformers' loading bars (its sampling bar is always off).

    ``variant``: the weight files' variant (diffusers' ``variant="fp16"``); ``ablation``: load the
    trained variant that paper row uses (reference/ablations.py; the full model for ``wo_lcm``).
    """
    from reference.pipeline import ConsistentAvatarPipeline

    if dtype is not None and dtype not in DTYPES:
        raise CabenchError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    target = resolve_device(device)
    if isinstance(checkpoint, ConsistentAvatarPipeline):
        return checkpoint.to(target, DTYPES[dtype]) if dtype else checkpoint.to(target)
    path = resolve_checkpoint(checkpoint)
    variant = variant or weights_variant(path)
    trained = trained_variant(ablation)
    key = (str(path.resolve()), str(target), dtype, variant, trained)
    if key not in _LAST_LOADED:
        _LAST_LOADED.clear()
        kwargs = {"dtype": DTYPES[dtype]} if dtype else {}
        try:
            with library_progress_bars(progress):
                pipe = ConsistentAvatarPipeline.from_pretrained(path, ablation=trained, variant=variant, **kwargs)
        except (OSError, ValueError) as error:
            raise WeightsMissingError(f"cannot load the pipeline in {path}: {error}") from None
        pipe.set_progress_bar_config(disable=True)
        _LAST_LOADED[key] = pipe.to(target)
    return _LAST_LOADED[key]


def _check(name: str, array: np.ndarray, shape_tail: tuple, count: int | None) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 1 + len(shape_tail) or any(a != b for a, b in zip(array.shape[1:], shape_tail) if b != -1):
        raise InputError(f"{name} must have shape (T,{','.join('*' if b == -1 else str(b) for b in shape_tail)}), "
                         f"got {array.shape}")
    if count is not None and array.shape[0] != count:
        raise InputError(f"{name} has {array.shape[0]} frames, rgb has {count}")
    if not np.isfinite(array.astype(np.float64)).all():
        raise InputError(f"{name} holds NaN or infinite values")
    return array


def frames_to_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (T,H,W,3) frames as float (T,3,size,size) in [0,1], bicubic-resized when their size differs: how
    the pipeline's inputs reach a model that runs at its training resolution."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255)
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return x


def _labels(emotion, count: int) -> list[str] | None:
    """One label for every frame (a string) or one per frame (a sequence); None: the pipeline's neutral."""
    if emotion is None or isinstance(emotion, str):
        return None if emotion is None else [emotion] * count
    labels = [str(label) for label in emotion]
    if len(labels) != count:
        raise InputError(f"emotion has {len(labels)} labels, rgb has {count} frames")
    return labels


@torch.no_grad()
def warm_up(pipe, batch_size: int = 8, scheduler: str = "lcm") -> None:
    """One batch of ``batch_size`` blank frames through every stage at one step each, so that one-time
    costs (kernel selection, allocator growth, lazy initialisation) stay out of a timed render."""
    size = int(pipe.vae.config.sample_size)
    blank = torch.zeros(batch_size, 3, size, size)
    pipe(blank, blank, torch.zeros(batch_size, 6), torch.zeros(batch_size, 100), num_inference_steps=1,
         tsdm_steps=1, generator=[torch.Generator().manual_seed(i) for i in range(batch_size)],
         ablation=pipe.trained_ablation, scheduler=scheduler)


def render_sequence(checkpoint, rgb, normal, pose, expression, emotion=None, ablation=None, scheduler="lcm",
                    steps=None, seed=0, device="auto", dtype=None, batch_size=8, progress=False,
                    across_processes=False, ablation_mode="trained", lcm_lora: bool = True) -> np.ndarray:
    """Render a sequence: uint8 (T,H,W,3) stage-1 rgb/normal, pose (T,6), expression (T,100) in,
    uint8 (T,H,W,3) frames out (at the input size; the model runs at its training resolution).

    ``checkpoint``: a pipeline folder, ``"tiny"``, or a loaded pipeline. ``emotion``: one label for
    every frame or one per frame (default: each frame's label from its expression by the checkpoint's
    emotion database, ``emotion_db/``, else neutral). ``ablation`` renders that paper row: its trained
    variant from the checkpoint folder, or with ``ablation_mode="zero-input"`` the full model with
    the input switched off (a diagnosis). ``steps``: default the sampler's usual count (LCM 10;
    ``ablation="wo_lcm"`` samples the undistilled weights with DDIM, 50 steps).
    ``across_processes``: share the batches between the processes of a launch (module docstring).
    ``lcm_lora=False``: the LCM sampler on the undistilled weights, the checkpoint's LCM-LoRA switched
    off (reference/pipeline.py; other samplers never use it, so it changes nothing for them).
    """
    check_ablation(ablation, ablation_mode)
    if scheduler not in SCHEDULERS:
        raise CabenchError(f"unknown scheduler {scheduler!r}; choose one of: {', '.join(SCHEDULERS)}")
    if steps is not None and not 1 <= int(steps) <= 1000:
        raise CabenchError(f"steps must be between 1 and 1000, got {steps}")
    if int(batch_size) < 1:
        raise CabenchError(f"batch_size must be at least 1, got {batch_size}")
    rgb = _check("rgb", rgb, (-1, -1, 3), None)
    count, height, width = rgb.shape[:3]
    normal = _check("normal", normal, rgb.shape[1:], count)
    pose = _check("pose", pose, (6,), count).astype(np.float32)
    expression = _check("expression", expression, (100,), count).astype(np.float32)
    labels = _labels(emotion, count)
    pipe = load_pipeline(checkpoint, device, dtype, ablation=ablation if ablation_mode == "trained" else None,
                         progress=progress)  # one cached pipeline: the sampler is this call's (below), not set on it
    size = int(pipe.vae.config.sample_size)
    context = pipe.encode_empty_prompt()
    emotions = pipe.embed_emotions(pipe.emotion_labels(labels, count, expression))

    from accelerate.utils import gather_object

    state = process_state(device)
    shared = across_processes and state.num_processes > 1
    batches = [range(start, min(count, start + batch_size)) for start in range(0, count, batch_size)]
    rendered = []
    with (state.split_between_processes(batches) if shared else nullcontext(batches)) as mine:
        for frames in tqdm(mine, desc="render", disable=not progress or not state.is_main_process):
            sl = slice(frames.start, frames.stop)
            result = pipe(
                frames_to_tensor(rgb[sl], size), frames_to_tensor(normal[sl], size), torch.from_numpy(pose[sl]),
                torch.from_numpy(expression[sl]), num_inference_steps=None if steps is None else int(steps),
                generator=[torch.Generator().manual_seed(seed + i) for i in frames], ablation=ablation,
                ablation_mode=ablation_mode, prompt_embeds=context, emotion_embeds=emotions[sl], scheduler=scheduler,
                lcm_lora=lcm_lora,
            ).images
            if result.shape[-2:] != (height, width):
                result = torch.nn.functional.interpolate(result, size=(height, width), mode="bicubic",
                                                         align_corners=False).clamp(0, 1)
            rendered.append((frames.start, (result.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)))
    if shared:
        rendered = gather_object(rendered)
    return np.concatenate([frames for _, frames in sorted(rendered, key=lambda part: part[0])])
