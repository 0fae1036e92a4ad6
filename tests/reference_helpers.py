"""Helpers for the reference-pipeline tests: a tiny layout-conformant dataset and a tiny pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def make_sequence(root: Path, frames: int = 6, size: int = 64, with_pose: bool = True, seed: int = 0) -> Path:
    """Write a sequence folder in the INSTA / `cabench synth` layout (RGBA frames, stage-1 renders)."""
    rng = np.random.default_rng(seed)
    seq = Path(root)
    for sub in ("images", "stage1/rgb", "stage1/normal", "flame/exp"):
        (seq / sub).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    entries = []
    for i in range(frames):
        phase = i / max(frames, 1)
        base = np.stack([np.sin(6 * xx + phase), np.cos(5 * yy - phase), np.sin(4 * (xx + yy))], -1)
        img = ((base * 0.5 + 0.5) * 255).astype(np.uint8)
        alpha = (((xx - 0.5) ** 2 + (yy - 0.5) ** 2) < 0.16).astype(np.uint8) * 255
        Image.fromarray(np.dstack([img, alpha])).save(seq / "images" / f"{i:05d}.png")
        coarse = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(coarse).save(seq / "stage1" / "rgb" / f"{i:05d}.png")
        Image.fromarray(np.roll(img, 3, axis=1)).save(seq / "stage1" / "normal" / f"{i:05d}.png")
        np.savetxt(seq / "flame" / "exp" / f"{i:05d}.txt", rng.normal(size=100))
        entry = {"file_path": f"images/{i:05d}.png"}
        if with_pose:
            entry["pose"] = rng.normal(scale=0.1, size=6).tolist()
        entries.append(entry)
    split = max(1, frames - 2)
    for name, part in (("transforms.json", entries), ("transforms_train.json", entries[:split]),
                       ("transforms_test.json", entries[split:])):
        (seq / name).write_text(json.dumps({"frames": part}))
    return seq


def random_inputs(n: int = 2, size: int = 32, seed: int = 0):
    """Float stage-1 inputs for the pipeline: rgb, normal (n,3,size,size), pose (n,6), expression (n,100).

    32 px by default: the tiny pipeline takes any multiple of its VAE's factor (4), and a quarter of the
    pixels of its 64 px resolution quarters the tests' cost; tests about the size pass ``size``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g),
            torch.randn(n, 6, generator=g) * 0.1, torch.randn(n, 100, generator=g))


_PIPE = {}


def tiny_pipeline():
    """A random-init tiny ConsistentAvatarPipeline (built once per process; callers must not mutate)."""
    from reference.config import build_components
    from reference.pipeline import ConsistentAvatarPipeline

    if "pipe" not in _PIPE:
        _PIPE["pipe"] = ConsistentAvatarPipeline(**build_components("tiny", seed=0))
        _PIPE["pipe"].set_progress_bar_config(disable=True)
    return _PIPE["pipe"]
