"""How each published FID implementation turns frames into its Inception's input, and which file it loads.

Every implementation runs the same network (TensorFlow's 2015-12-05 Inception v3, pool_3, 2048-d;
:mod:`metrics.inception`), but each resizes, quantises and scales differently, and those steps
move FID by more than the differences between methods (clean-fid's paper; torchmetrics #3130,
clean-fid #7). An :class:`InceptionInput` pins them for one protocol: the weight file (a manifest
entry, hence its SHA-256), the file's format, and ``prepare``, which maps the protocol's frames
(float (N,3,H,W) in [0,1], exactly ``uint8 / 255``) to the network's (N,3,299,299) input:

- ``pytorch-fid`` (0.3.0): bilinear ``F.interpolate`` (``align_corners=False``, no antialiasing) of
  ``x / 255`` in float32, then ``2x - 1``.
- ``clean-fid`` (0.1.35, mode ``clean``): each channel of the uint8 frame as a float32 PIL image
  (mode ``F``) resized to 299 x 299 by PIL's bicubic filter, which antialiases (its support
  widens with the downscale factor), clipped to [0, 255], then ``(x - 128) / 128``; NVIDIA's
  TorchScript Inception (``inception-2015-12-05.pt``, read into the network here).
- ``clean-fid-legacy-pytorch``: pytorch-fid's file; ``F.interpolate`` bilinear of the 0-255 float
  values (before the division, unlike pytorch-fid), clipped to [0, 255], ``/ 255``, ``2x - 1``.
- ``clean-fid-legacy-tensorflow``: NVIDIA's file; its own resize, TensorFlow 1's ``resize_bilinear``
  emulated with ``affine_grid`` / ``grid_sample`` (the sampling grid shifted by 1/W - 1/299,
  border padding) on the 0-255 values, then ``(x - 128) / 128``.
- ``torch-fidelity`` (0.4.0, ``inception-v3-compat``, what torchmetrics' FID uses): pytorch-fid's
  file (the same bytes); the uint8 frame as float32, TensorFlow 1's ``resize_bilinear``
  (``align_corners=False``: source coordinate ``i * in / out``, no half-pixel offset, the upper
  neighbour clamped; :func:`resize_bilinear_tf1`), then ``(x - 128) / 128``.

Every implementation takes the features in float32 and the statistics in float64 (``np.cov`` of the
float32 features); their square roots differ (pytorch-fid and clean-fid ``scipy.linalg.sqrtm``,
torch-fidelity the eigenvalues of S1 S2), all of the same quantity that :mod:`metrics.fid` computes
in exact symmetric forms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 299


def resize_pytorch_fid(frames: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's ``InceptionV3`` input step: float (N,3,H,W) in [0,1] -> bilinear 299 x 299 (no
    antialias, align_corners False) -> ``2x - 1``. The frames are made contiguous (NCHW) first, the
    layout its data loader gives."""
    resized = F.interpolate(frames.contiguous(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return 2 * resized - 1


def as_uint8_values(frames: torch.Tensor) -> torch.Tensor:
    """Float frames ``u / 255`` back to their 8-bit values ``u``, as float32 (exact: rounding recovers u)."""
    return torch.round(frames.float() * 255).contiguous()


def tf_range(values: torch.Tensor) -> torch.Tensor:
    """0-255 values to the TensorFlow graph's [-1, 1): ``(x - 128) / 128``."""
    return (values - 128) / 128


def resize_clean(frames: torch.Tensor) -> torch.Tensor:
    """clean-fid's ``clean`` mode resize: per frame and channel, PIL's float32 bicubic resize to 299 x 299
    (with its antialiasing), clipped to [0, 255]; 0-255 float32 values. Runs on the CPU (PIL)."""
    from PIL import Image

    values = as_uint8_values(frames).cpu().numpy()
    out = np.empty((len(values), 3, SIZE, SIZE), np.float32)
    for index, frame in enumerate(values):
        for channel in range(3):
            image = Image.fromarray(np.ascontiguousarray(frame[channel], dtype=np.float32))  # mode F
            out[index, channel] = np.asarray(image.resize((SIZE, SIZE), resample=Image.BICUBIC)).clip(0, 255)
    return torch.from_numpy(out).to(frames.device)


def resize_legacy_pytorch(frames: torch.Tensor) -> torch.Tensor:
    """clean-fid's ``legacy_pytorch`` mode resize: bilinear ``F.interpolate`` of the 0-255 values, clipped
    to [0, 255]."""
    resized = F.interpolate(as_uint8_values(frames), size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return resized.clamp(0, 255)


def legacy_pytorch_range(values: torch.Tensor) -> torch.Tensor:
    """clean-fid's ``model(x / 255)`` into pytorch-fid's network, which maps [0,1] by ``2x - 1``."""
    return 2 * (values / 255) - 1


def resize_bilinear_tf1(values: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """TensorFlow 1's ``resize_bilinear(align_corners=False)`` of float (N,C,H,W): output pixel i samples
    source coordinate ``i * in / out`` (float32), between its floor and the next pixel (clamped to the
    last), rows then columns, each as ``a + (b - a) * t``."""

    def axis(count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position = torch.arange(size, dtype=torch.float32, device=values.device) * torch.tensor(count / size)
        low = position.long()
        return low, (low + 1).clamp_max(count - 1), position - low.float()

    y0, y1, dy = axis(values.shape[2])
    x0, x1, dx = axis(values.shape[3])
    top, bottom = values[:, :, y0, :], values[:, :, y1, :]
    left_top, right_top = top[:, :, :, x0], top[:, :, :, x1]
    left_bottom, right_bottom = bottom[:, :, :, x0], bottom[:, :, :, x1]
    upper = left_top + (right_top - left_top) * dx.view(1, 1, 1, size)
    lower = left_bottom + (right_bottom - left_bottom) * dx.view(1, 1, 1, size)
    return upper + (lower - upper) * dy.view(1, 1, size, 1)


def resize_torch_fidelity(frames: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's ``inception-v3-compat`` resize: 8-bit values as float32, TensorFlow 1 bilinear
    to 299 x 299 (0-255 values)."""
    return resize_bilinear_tf1(as_uint8_values(frames))


def resize_nvidia(frames: torch.Tensor) -> torch.Tensor:
    """The resize inside NVIDIA's TorchScript Inception (clean-fid's ``legacy_tensorflow``): TensorFlow 1's
    bilinear alignment as an ``affine_grid`` shifted by 1/W - 1/299 (and 1/H - 1/299), ``grid_sample``
    with border padding, on the 0-255 values."""
    values = as_uint8_values(frames)
    count, channels, height, width = values.shape
    theta = torch.eye(2, 3, device=values.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / SIZE
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / SIZE
    grid = F.affine_grid(theta.unsqueeze(0).repeat(count, 1, 1), [count, channels, SIZE, SIZE], align_corners=False)
    return F.grid_sample(values, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class InceptionInput:
    """One implementation's Inception: ``weights`` (manifest name), the file's ``format`` (``state``: a
    state dict with pytorch-fid's names; ``nvidia``: NVIDIA's TorchScript), ``resize`` (frames in [0,1]
    -> the 299 x 299 values the implementation resizes to, before its scaling), ``scale`` (those values
    -> the network's [-1,1] input), how it draws KID's subsets (``kid_draws``, recorded) and the
    covariance's divisor n - ``ddof``; ``no_kid``: why the implementation has no KID of frames (None: it has)."""

    weights: str
    format: str
    resize: Callable[[torch.Tensor], torch.Tensor]
    scale: Callable[[torch.Tensor], torch.Tensor]
    kid_draws: str
    ddof: int = 1
    no_kid: str | None = None

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N,3,H,W) in [0,1] -> the network's (N,3,299,299) input."""
        return self.scale(self.resize(frames))


def _identity(values: torch.Tensor) -> torch.Tensor:
    return values


_TORCH_FIDELITY_KID = "numpy RandomState(seed) as torch-fidelity's rng_seed"
_CLEAN_FID_KID = "numpy RandomState(seed) (clean-fid draws from numpy's unseeded global generator)"
_PYTORCH_FID = InceptionInput("fid-inception-pytorch-fid", "state", resize_pytorch_fid, _identity, _TORCH_FIDELITY_KID)
INPUTS: dict[str, InceptionInput] = {
    "pytorch-fid": _PYTORCH_FID,
    # the canonical protocol's FID is pytorch-fid's (the implementation most papers cite) on the canonical frames
    "canonical": _PYTORCH_FID,
    "clean-fid": InceptionInput("fid-inception-clean-fid", "nvidia", resize_clean, tf_range, _CLEAN_FID_KID),
    "clean-fid-legacy-pytorch": InceptionInput("fid-inception-pytorch-fid", "state", resize_legacy_pytorch,
                                               legacy_pytorch_range, _CLEAN_FID_KID),
    "clean-fid-legacy-tensorflow": InceptionInput("fid-inception-clean-fid", "nvidia", resize_nvidia, tf_range,
                                                  _CLEAN_FID_KID),
    "torch-fidelity": InceptionInput("fid-inception-torch-fidelity", "state", resize_torch_fidelity, tf_range,
                                     _TORCH_FIDELITY_KID),
    "stylegan-v": InceptionInput("fid-inception-clean-fid", "nvidia", resize_nvidia, tf_range, "none", ddof=0,
                                 no_kid="StyleGAN-V computes KID only from a generator, not from frames; the same "
                                        "network and resize on frames: --protocol clean-fid-legacy-tensorflow"),
}
