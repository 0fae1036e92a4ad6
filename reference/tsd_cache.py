"""The aligned TSD of the training frames, as TSDM samples it, computed once and cached for stage 3.

The paper trains the portrait generator "based on the outputs of the first two stages" (section
5.1), so by default the FCSD trains on what it meets at inference: TSDM's aligned TSD' of each
training frame, sampled from the TSD of the stage-1 RGB, the pose and the expression with the
sampler the pipeline renders with by default (``SAMPLER``: LCM, 10 steps, with TSDM's LCM-LoRA
when it has one), frame j's noise from seed + j. Sampling it at every step would cost a TSDM
run per sample, so it is sampled once per frame (one draw of TSDM's noise per frame) and kept in
``<pipeline>/train_state/aligned_tsd.safetensors`` (N x 3 x H x W float32) under a fingerprint of
everything it depends on: the weights of the TSDM UNet (its LoRA included), E, the VAE and the
text encoder; the frames, poses and expressions; the sampler, steps and seed. A stage that finds
the cache with its fingerprint reuses it (so a resumed stage 3 sees exactly the values the
interrupted one saw); a fresh stage recomputes a stale one; a resumed stage refuses one that went
stale (TSDM changed under it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from metrics.errors import CabenchError
from reference.tsd import PAPER_CUTOFF

SAMPLER = ("lcm", 10)
CACHE_FILE = "aligned_tsd.safetensors"
BATCH = 8


def fingerprint(pipe, data, scheduler: str, steps: int, seed: int) -> str:
    digest = hashlib.sha256()
    for name in ("tsdm_unet", "tsdm_encoder", "vae", "text_encoder"):
        for key, value in sorted(getattr(pipe, name).state_dict().items()):
            digest.update(f"{name}.{key}".encode())
            digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    for array in (data.rgb, data.pose, data.expression):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(dict(pipe.scheduler.config), sort_keys=True, default=str).encode())
    digest.update(f"{scheduler},{steps},{seed},{data.rgb.shape}".encode())
    cutoff = float(pipe.config.get("tsd_cutoff", PAPER_CUTOFF))
    if cutoff != PAPER_CUTOFF:  # (caches made before the cutoff was a setting keep their fingerprint)
        digest.update(f"tsd_cutoff={cutoff}".encode())
    return digest.hexdigest()


@torch.no_grad()
def sample_aligned_tsd(pipe, data, scheduler: str, steps: int, seed: int, device) -> torch.Tensor:
    """TSD' of every frame of ``data`` (N,3,H,W) float32 on the CPU, frame j's noise from seed + j."""
    from reference.schedulers import make_scheduler

    out = []
    for start in range(0, len(data), BATCH):  # align_tsd samples LCM with TSDM's LCM-LoRA, if it has one
        rows = np.arange(start, min(len(data), start + BATCH))
        rgb = torch.from_numpy(data.rgb[rows]).permute(0, 3, 1, 2).float().div(255).to(device)
        pose = torch.from_numpy(data.pose[rows]).to(device)
        expression = torch.from_numpy(data.expression[rows]).to(device)
        generators = [torch.Generator().manual_seed(seed + int(j)) for j in rows]
        guide = pipe.align_tsd(pipe.tsd_of(rgb), pose, expression, steps, generators,
                               make_scheduler(scheduler, pipe.scheduler.config))
        out.append(guide.float().cpu())
    return torch.cat(out)


def aligned_tsd(pipe, data, folder: Path, accelerator, seed: int, resume: bool,
                sampler: tuple[str, int] = SAMPLER) -> torch.Tensor:
    """The cached TSD' of ``data``'s frames (see the module docstring); the main process writes it."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    scheduler, steps = sampler
    path = Path(folder) / CACHE_FILE
    wanted = fingerprint(pipe, data, scheduler, steps, seed)
    found = _stored_fingerprint(path)
    if found != wanted:
        if resume and found is not None:
            raise CabenchError(f"{path} was sampled from other TSDM weights, frames or sampler than this run's; a "
                               "resumed stage 3 would train on other conditions: train stage 3 afresh (without "
                               "--resume)")
        if accelerator.is_main_process:
            values = sample_aligned_tsd(pipe, data, scheduler, steps, seed, accelerator.device)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"aligned_tsd": values}, str(path), metadata={"fingerprint": wanted})
        accelerator.wait_for_everyone()
    with safe_open(str(path), framework="pt") as stored:
        if stored.metadata().get("fingerprint") != wanted:
            raise CabenchError(f"{path} changed while this run read it")
        return stored.get_tensor("aligned_tsd")


def _stored_fingerprint(path: Path) -> str | None:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as stored:
            return (stored.metadata() or {}).get("fingerprint")
    except (OSError, SafetensorError):  # a truncated or foreign file is recomputed
        return None
