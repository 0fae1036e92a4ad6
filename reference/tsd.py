"""Temporally-Sensitive Details (TSD): the high-frequency map that guides ConsistentAvatar.

Convention (paper section 4.1, official ``TSD.py``): ITU-R 601 luma, 2-D FFT with the zero
frequency shifted to pixel ((h-1)//2, (w-1)//2), a Gaussian high-pass H = 1 - exp(-d^2 / (2 D^2))
around that pixel, inverse FFT, magnitude, per-image min-max normalisation to [0, 1], written as a
3-channel map with R = G = value and B = 0.

The official script casts the magnitude to uint8 before normalising, which wraps values above 255;
this implementation keeps floats throughout, so it matches the script only where no value wraps.
"""

from __future__ import annotations

import torch

from metrics.errors import InputError

LUMA_601 = (0.299, 0.587, 0.114)
PAPER_CUTOFF = 10.0
"""The paper's D, at its 512 px. A pipeline records the D it was trained with (``tsd_cutoff``);
:func:`scaled_cutoff` gives the D of the same band in cycles per pixel at another size."""


def scaled_cutoff(size: int, reference_size: int = 512, cutoff: float = PAPER_CUTOFF) -> float:
    """``cutoff * size / reference_size``: the same fraction of the Nyquist frequency at ``size`` px as
    ``cutoff`` at ``reference_size`` px (1.25 at 64 px for the paper's 10 at 512). ``cutoff`` itself is
    the same band in cycles per image, at any size."""
    return float(cutoff) * size / reference_size


def gaussian_highpass(height: int, width: int, cutoff: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """H(u, v) = 1 - exp(-d^2 / (2 cutoff^2)), d measured from ((h-1)//2, (w-1)//2); shape (h, w)."""
    rows = torch.arange(height, device=device, dtype=dtype) - (height - 1) // 2
    cols = torch.arange(width, device=device, dtype=dtype) - (width - 1) // 2
    d2 = rows[:, None] ** 2 + cols[None, :] ** 2
    return 1.0 - torch.exp(-d2 / (2.0 * float(cutoff) ** 2))


def tsd(images: torch.Tensor, cutoff: float = 10.0) -> torch.Tensor:
    """TSD maps of a batch: float (N,3,H,W) in [0,1] in, float (N,3,H,W) in [0,1] out.

    Runs on the images' device; the FFT is computed in float32 (float64 for float64 input).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"tsd expects images of shape (N,3,H,W), got {tuple(images.shape)}")
    if cutoff <= 0:
        raise InputError(f"tsd cutoff must be positive, got {cutoff}")
    work = torch.float64 if images.dtype == torch.float64 else torch.float32
    x = images.to(work)
    weights = torch.tensor(LUMA_601, dtype=work, device=x.device).view(1, 3, 1, 1)
    luma = (x * weights).sum(dim=1)  # (N,H,W)
    h, w = luma.shape[-2:]
    spectrum = torch.fft.fftshift(torch.fft.fft2(luma), dim=(-2, -1))
    spectrum = spectrum * gaussian_highpass(h, w, cutoff, device=x.device, dtype=work)
    detail = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).abs()
    low = detail.amin(dim=(-2, -1), keepdim=True)
    high = detail.amax(dim=(-2, -1), keepdim=True)
    value = (detail - low) / (high - low).clamp_min(torch.finfo(work).tiny)
    out = torch.stack([value, value, torch.zeros_like(value)], dim=1)
    return out.to(images.dtype if images.is_floating_point() else torch.float32)
