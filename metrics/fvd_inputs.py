"""How each published FVD implementation turns a clip into its I3D's input, and which file it loads.

A clip is ``CLIP_LENGTH`` = 16 consecutive frames; the protocol's frames come as float (N,16,3,H,W)
in [0,1], exactly ``uint8 / 255`` (:mod:`metrics.protocols`: the colour channels as stored, alpha
dropped). An :class:`I3DInput` pins, for one implementation, the weight file (a manifest entry),
its format, and ``prepare``: clips -> the network's (N,3,16,224,224) input in [-1,1]:

- ``videogpt`` (VideoGPT's ``videogpt/fvd/fvd.py``, which TATS copies): ``preprocess`` per video:
  the uint8 values as float32 ``/ 255.``, bilinear ``F.interpolate`` (``align_corners=False``, no
  antialiasing) of every frame so that the *short* side is 224 and the long side
  ``ceil(long * 224 / short)``, a centre crop of 224 x 224 (offset ``(size - 224) // 2``), then
  ``(x - 0.5) * 2`` (its ``video -= 0.5`` then ``videos * 2``, kept in that order: ``2x - 1`` rounds
  differently in float32). Verified against VideoGPT's own code (``tests/calibration/fvd.json``).
- ``stylegan-v`` (StyleGAN-V's ``src/metrics/frechet_video_distance.py``): the uint8 clip goes to
  the TorchScript as ``detector(x, rescale=True, resize=True, return_features=True)``. Public:
  ``rescale`` maps ``x / 255 * 2 - 1`` (StyleGAN-V's author in universome/fvd-comparison#4);
  ``return_features`` returns the 400 logits before the softmax (StyleGAN-V's comment). Assumed,
  from third-party descriptions of the module's code (not verified: the file cannot be obtained
  here): ``resize`` resizes every frame bilinearly (``align_corners=False``, no antialiasing) to
  224 x 224 *without* keeping the aspect ratio or cropping, after the rescale; batch norm eps 1e-3
  (DeepMind's Sonnet default in the TF-Hub model it reproduces). StyleGAN-V's statistics divide the
  scatter by n (``raw_cov / n - mean meanᵀ``), not n - 1 (verified: its ``FeatureStats``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from metrics.i3d import CLIP_LENGTH, SIZE


def _values(clips: torch.Tensor) -> torch.Tensor:
    """Float clips ``u / 255`` back to their 8-bit values ``u`` as float32 (exact: rounding recovers u)."""
    return torch.round(clips.float() * 255)


def videogpt_resize(clips: torch.Tensor) -> torch.Tensor:
    """VideoGPT's ``preprocess`` up to the crop: (N,T,3,H,W) in [0,1] -> (N,T,3,224,224) in [0,1]
    (short side to 224 by bilinear ``F.interpolate``, long side ``ceil``, centre crop)."""
    count, length, channels, height, width = clips.shape
    scale = SIZE / min(height, width)
    size = (SIZE, math.ceil(width * scale)) if height < width else (math.ceil(height * scale), SIZE)
    frames = _values(clips).reshape(count * length, channels, height, width) / 255.0
    frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    top, left = (frames.shape[2] - SIZE) // 2, (frames.shape[3] - SIZE) // 2
    frames = frames[:, :, top:top + SIZE, left:left + SIZE]
    return frames.reshape(count, length, channels, SIZE, SIZE)


def videogpt_prepare(clips: torch.Tensor) -> torch.Tensor:
    """VideoGPT's network input: :func:`videogpt_resize`, ``(x - 0.5) * 2``, as (N,3,T,224,224)."""
    return ((videogpt_resize(clips) - 0.5) * 2).permute(0, 2, 1, 3, 4).contiguous()


def stylegan_v_prepare(clips: torch.Tensor) -> torch.Tensor:
    """StyleGAN-V's TorchScript input step as assumed (module docstring): ``x / 255 * 2 - 1`` of the
    uint8 values, then bilinear 224 x 224 of every frame; (N,3,T,224,224)."""
    count, length, channels, height, width = clips.shape
    scaled = _values(clips) / 255 * 2 - 1
    frames = F.interpolate(scaled.reshape(count * length, channels, height, width), size=(SIZE, SIZE),
                           mode="bilinear", align_corners=False)
    return frames.reshape(count, length, channels, SIZE, SIZE).permute(0, 2, 1, 3, 4).contiguous()


@dataclass(frozen=True)
class I3DInput:
    """One implementation's I3D: ``weights`` (manifest name), the file's ``format`` (``videogpt``: the
    state dict; ``torchscript``: StyleGAN-V's module), ``prepare`` (clips -> network input), the
    covariance's divisor (``ddof``: 1 for n - 1, 0 for n) and how its Fréchet distance takes the
    square root (``sqrt``, recorded)."""

    weights: str
    format: str
    prepare: Callable[[torch.Tensor], torch.Tensor]
    ddof: int
    sqrt: str
    clip_length: int = CLIP_LENGTH


FVD_INPUTS: dict[str, I3DInput] = {
    "videogpt": I3DInput("fvd-i3d-videogpt", "videogpt", videogpt_prepare, 1,
                         "torch SVD square roots (tensorflow-gan's trace_sqrt_product), float32 features"),
    "stylegan-v": I3DInput("fvd-i3d-stylegan-v", "torchscript", stylegan_v_prepare, 0,
                           "scipy.linalg.sqrtm of the product, float64 statistics"),
}
