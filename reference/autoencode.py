"""The stage-1 proxy through the checkpoint's autoencoder alone: the floor a latent model must beat.

A latent diffusion model renders through its VAE: even one that returned its input's latent unchanged
would score what the input scores after a VAE round trip at the model's resolution, not what the
input scores. :func:`autoencode` is that round trip, resized as :func:`reference.render.render_sequence`
resizes (bicubic to the VAE's ``sample_size`` and back), so its scores are the floor of the model's rows.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def autoencode(checkpoint, rgb: np.ndarray, device: str = "auto", batch_size: int = 8, progress: bool = False) -> np.ndarray:
    """uint8 (T,H,W,3) in, the same frames encoded and decoded by the checkpoint's VAE out (uint8, same size)."""
    from reference.render import _check, frames_to_tensor, load_pipeline

    rgb = _check("rgb", rgb, (-1, -1, 3), None)
    pipe = load_pipeline(checkpoint, device, progress=progress)
    size = int(pipe.vae.config.sample_size)
    height, width = rgb.shape[1:3]
    out = []
    for start in range(0, len(rgb), batch_size):
        x = frames_to_tensor(rgb[start:start + batch_size], size).to(pipe.device, pipe.vae.dtype)
        y = pipe.decode_latents(pipe.encode_latents(x)).float().clamp(0, 1)
        if y.shape[-2:] != (height, width):
            y = torch.nn.functional.interpolate(y, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
        out.append((y.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8))
    return np.concatenate(out)
