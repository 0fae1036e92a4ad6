"""`render_sequence`: the one-call entry the baselines adapter and the demo use.

Frames are processed in batches; frame i's noise comes from its own generator seeded with
``seed + i``, so the output does not depend on ``batch_size``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from metrics.errors import CabenchError, InputError, WeightsMissingError
from reference.ablations import check_ablation, trained_variant

TINY_CHECKPOINT = Path(__file__).parent / "checkpoints" / "tiny"
_PIPELINES: dict[tuple[str, str, str | None], object] = {}


def resolve_checkpoint(checkpoint) -> Path:
    """``"tiny"`` names the shipped checkpoint; anything else is a pipeline folder."""
    path = TINY_CHECKPOINT if str(checkpoint) == "tiny" else Path(checkpoint)
    if not (path / "model_index.json").is_file():
        raise WeightsMissingError(f"checkpoint {path} is not a pipeline folder (no model_index.json); "
                                  "make one with `cabench train` or pass 'tiny' for the shipped one")
    return path


def load_pipeline(checkpoint, device: str = "cpu", ablation: str | None = None):
    """Load (and cache) a ConsistentAvatarPipeline from a folder, or pass a pipeline through; with
    ``ablation``, the trained variant that paper row uses (reference/ablations.py)."""
    from reference.pipeline import ConsistentAvatarPipeline

    if isinstance(checkpoint, ConsistentAvatarPipeline):
        return checkpoint.to(device)
    path = resolve_checkpoint(checkpoint)
    variant = trained_variant(ablation)
    key = (str(path.resolve()), device, variant)
    if key not in _PIPELINES:
        pipe = ConsistentAvatarPipeline.from_pretrained(path, ablation=variant).to(device)
        pipe.set_progress_bar_config(disable=True)
        _PIPELINES[key] = pipe
    return _PIPELINES[key]


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


def _to_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255)
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return x


def render_sequence(checkpoint, rgb, normal, pose, expression, emotion=None, ablation=None, scheduler="lcm",
                    steps=4, seed=0, device="cpu", batch_size=8, progress=False,
                    ablation_mode="trained") -> np.ndarray:
    """Render a sequence: uint8 (T,H,W,3) stage-1 rgb/normal, pose (T,6), expression (T,100) in,
    uint8 (T,H,W,3) frames out (at the input size; the model runs at its training resolution).
    ``ablation`` renders that paper row: its trained variant from the checkpoint folder, or with
    ``ablation_mode="zero-input"`` the full model with the input switched off (a diagnosis)."""
    check_ablation(ablation, ablation_mode)
    if not 1 <= int(steps) <= 1000:
        raise CabenchError(f"steps must be between 1 and 1000, got {steps}")
    rgb = _check("rgb", rgb, (-1, -1, 3), None)
    count, height, width = rgb.shape[:3]
    normal = _check("normal", normal, rgb.shape[1:], count)
    pose = _check("pose", pose, (6,), count).astype(np.float32)
    expression = _check("expression", expression, (100,), count).astype(np.float32)
    if emotion is not None and len(emotion) != count:
        raise InputError(f"emotion has {len(emotion)} labels, rgb has {count} frames")
    pipe = load_pipeline(checkpoint, device, ablation if ablation_mode == "trained" else None)
    pipe.set_scheduler(scheduler)
    size = int(pipe.vae.config.sample_size)
    out = []
    for start in tqdm(range(0, count, batch_size), desc="render", disable=not progress):
        sl = slice(start, min(count, start + batch_size))
        generators = [torch.Generator(device="cpu").manual_seed(seed + i) for i in range(sl.start, sl.stop)]
        result = pipe(
            _to_tensor(rgb[sl], size), _to_tensor(normal[sl], size), torch.from_numpy(pose[sl]),
            torch.from_numpy(expression[sl]), emotion=None if emotion is None else list(emotion[sl]),
            num_inference_steps=int(steps), generator=generators, ablation=ablation, ablation_mode=ablation_mode,
        ).images
        if result.shape[-2:] != (height, width):
            result = torch.nn.functional.interpolate(result, size=(height, width), mode="bicubic",
                                                     align_corners=False).clamp(0, 1)
        out.append((result.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8))
    return np.concatenate(out)
