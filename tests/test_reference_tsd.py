"""TSD maps against an independent NumPy restatement of the official script (floats kept)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.errors import InputError
from reference import tsd


def numpy_tsd(rgb: np.ndarray, d0: float = 10.0) -> np.ndarray:
    """The official TSD.py steps on one HxWx3 float image, written with NumPy (no uint8 cast)."""
    gray = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    f = np.fft.fftshift(np.fft.fftn(gray))
    h, w = gray.shape
    cy, cx = (h - 1) // 2, (w - 1) // 2
    y, x = np.mgrid[0:h, 0:w]
    mask = 1 - np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * d0**2))
    mag = np.abs(np.fft.ifftn(np.fft.ifftshift(f * mask)))
    mag = (mag - mag.min()) / (mag.max() - mag.min())
    out = np.zeros((h, w, 3))
    out[..., 0] = mag
    out[..., 1] = mag
    return out


@pytest.mark.parametrize("shape", [(64, 64), (63, 50)])
def test_tsd_matches_numpy_restatement(photos, shape):
    import cv2

    imgs = [cv2.resize(photos[k], shape[::-1], interpolation=cv2.INTER_AREA) for k in ("astronaut", "coffee")]
    batch = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).double() / 255
    out = tsd(batch, cutoff=10)
    assert out.shape == batch.shape and out.dtype == torch.float64
    for i, img in enumerate(imgs):
        ref = numpy_tsd(img.astype(np.float64) / 255)
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), ref, atol=1e-10)
    assert float(out[:, 2].abs().max()) == 0.0
    assert out.amin() == 0 and out.amax() == 1


def test_tsd_float32_close_and_constant_image():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(tsd(x).numpy(), tsd(x.double()).float().numpy(), atol=1e-4)
    # a flat image has no detail: the high-pass of a constant is ~0 everywhere, normalised safely
    flat = torch.full((1, 3, 16, 16), 0.5)
    assert torch.isfinite(tsd(flat)).all()


def test_tsd_bad_input():
    with pytest.raises(InputError, match="shape"):
        tsd(torch.zeros(3, 8, 8))
    with pytest.raises(InputError, match="cutoff"):
        tsd(torch.zeros(1, 3, 8, 8), cutoff=0)
