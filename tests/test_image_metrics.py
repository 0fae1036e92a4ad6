"""L1, L2, PSNR, SSIM and MS-SSIM against scikit-image and independent NumPy restatements."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage, signal
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

import metrics
from metrics.errors import InputError

SIZES = [(64, 80), (37, 53), (128, 96)]


def _noise(x, rng):
    return np.clip(x + rng.normal(0, 0.06, x.shape), 0, 1)


def _blur(x, rng):
    return ndimage.gaussian_filter(x, sigma=(1.3, 1.3, 0))


def _jpeg(x, rng):
    buffer = io.BytesIO()
    Image.fromarray(np.rint(x * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=20)
    return np.asarray(Image.open(buffer)).astype(np.float64) / 255


DEGRADATIONS = {"noise": _noise, "blur": _blur, "jpeg": _jpeg}


def _pairs(photos):
    rng = np.random.default_rng(0)
    for name, photo in photos.items():
        for height, width in SIZES:
            top, left = rng.integers(0, photo.shape[0] - height), rng.integers(0, photo.shape[1] - width)
            gt = photo[top : top + height, left : left + width].astype(np.float64) / 255
            for degradation, apply in DEGRADATIONS.items():
                yield f"{name}-{height}x{width}-{degradation}", apply(gt, rng), gt


def _t(x, dtype=torch.float32):
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].to(dtype)


def _random_mask(shape, seed):
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random(shape), 4) > 0.5
    mask[shape[0] // 2, shape[1] // 2] = True
    return mask


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_l2_psnr_ssim_match_scikit_image(photos, dtype, tol):
    for label, pred, gt in _pairs(photos):
        assert metrics.l2(_t(pred, dtype), _t(gt, dtype)).item() == pytest.approx(mean_squared_error(gt, pred), abs=tol), label
        psnr = metrics.psnr(_t(pred, dtype), _t(gt, dtype)).item()
        assert psnr == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=1), abs=max(tol, 1e-4 if dtype == torch.float32 else tol)), label
        reference = structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                          data_range=1, channel_axis=-1)
        assert abs(metrics.ssim(_t(pred, dtype), _t(gt, dtype)).item() - reference) <= tol, label


def test_masked_metrics_match_scikit_image_on_mask_pixels(photos):
    for index, (label, pred, gt) in enumerate(_pairs(photos)):
        mask = _random_mask(gt.shape[:2], index)
        mask_t = torch.from_numpy(mask.astype(np.float32))[None, None]
        mse = mean_squared_error(gt[mask], pred[mask])
        assert abs(metrics.l2(_t(pred), _t(gt), mask_t).item() - mse) <= 1e-5, label
        assert abs(metrics.psnr(_t(pred), _t(gt), mask_t).item() - peak_signal_noise_ratio(gt[mask], pred[mask], data_range=1)) <= 1e-4
        assert abs(metrics.l1(_t(pred), _t(gt), mask_t).item() - np.abs(gt - pred)[mask].mean()) <= 1e-5
        _, full = structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1, channel_axis=-1, full=True)
        crop = (slice(5, -5), slice(5, -5))
        inner = mask[crop]
        if inner.any():
            reference = full[crop][inner].mean()
            assert abs(metrics.ssim(_t(pred), _t(gt), mask_t).item() - reference) <= 1e-5, label


def test_batch_gives_one_value_per_frame_equal_to_single_frames(photos):
    pairs = [(p, g) for _, p, g in _pairs({"astronaut": photos["astronaut"]}) if p.shape == (64, 80, 3)]
    pred = torch.cat([_t(p) for p, _ in pairs])
    gt = torch.cat([_t(g) for _, g in pairs])
    for kernel in (metrics.l2, metrics.psnr, metrics.ssim):
        batched = kernel(pred, gt)
        assert batched.shape == (len(pairs),)
        singles = torch.cat([kernel(pred[i : i + 1], gt[i : i + 1]) for i in range(len(pairs))])
        torch.testing.assert_close(batched, singles)


def test_uniform_ssim_matches_scikit_image_defaults(photos):
    for label, pred, gt in _pairs(photos):
        reference = structural_similarity(gt, pred, win_size=7, data_range=2, channel_axis=-1)
        assert abs(metrics.image.ssim_uniform(_t(pred, torch.float64), _t(gt, torch.float64)).item() - reference) <= 1e-10, label


def _ms_ssim_numpy(x, y, weights=(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)):
    """MS-SSIM restated from Wang et al. 2003 with valid Gaussian windows and 2x average pooling."""
    coords = np.arange(11) - 5
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    g /= g.sum()
    window = np.outer(g, g)
    c1, c2 = 0.01**2, 0.03**2

    def filt(a):
        return signal.correlate2d(a, window, mode="valid")

    def pool(a):
        pad_h, pad_w = a.shape[0] % 2, a.shape[1] % 2
        a = np.pad(a, ((pad_h, pad_h), (pad_w, pad_w)))
        h, w = a.shape[0] // 2, a.shape[1] // 2
        return a[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))

    per_channel = []
    for c in range(x.shape[2]):
        a, b = x[..., c], y[..., c]
        values = []
        for level in range(5):
            mu_a, mu_b = filt(a), filt(b)
            var_a, var_b = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2
            cov = filt(a * b) - mu_a * mu_b
            cs = (2 * cov + c2) / (var_a + var_b + c2)
            lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
            if level < 4:
                values.append(max(cs.mean(), 0))
                a, b = pool(a), pool(b)
            else:
                values.append(max((lum * cs).mean(), 0))
        per_channel.append(np.prod(np.array(values) ** np.array(weights)))
    return float(np.mean(per_channel))


def test_ms_ssim_matches_restatement(photos):
    gt = photos["astronaut"][100:277, 150:331].astype(np.float64) / 255  # odd sides exercise the padding
    for apply in DEGRADATIONS.values():
        pred = apply(gt, np.random.default_rng(1))
        value = metrics.ms_ssim(_t(pred, torch.float64), _t(gt, torch.float64)).item()
        assert abs(value - _ms_ssim_numpy(pred, gt)) <= 1e-8


def test_bad_inputs_name_the_argument():
    a = torch.rand(1, 3, 32, 32)
    with pytest.raises(InputError, match="differs from gt shape"):
        metrics.l2(a, torch.rand(1, 3, 32, 31))
    with pytest.raises(InputError, match="pred has non-finite"):
        metrics.psnr(torch.full_like(a, float("nan")), a)
    with pytest.raises(InputError, match="mask shape"):
        metrics.ssim(a, a, torch.ones(1, 3, 32, 32))
    with pytest.raises(InputError, match="mask is empty"):
        metrics.l2(a, a, torch.zeros(1, 1, 32, 32))
    with pytest.raises(InputError, match="at least 11x11"):
        metrics.ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="MS-SSIM needs"):
        metrics.ms_ssim(a, a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_over_several_strips_in_either_memory_layout_matches_scikit_image(photos, dtype):
    """The CPU path filters each channel in strips of ``STRIP_BYTES`` per map: a frame several strips
    tall, given in NCHW or channels-last memory, scores as scikit-image's whole-frame filter."""
    from metrics.image import STRIP_BYTES

    rng = np.random.default_rng(3)
    width = 512
    rows = STRIP_BYTES // (width * torch.empty((), dtype=dtype).element_size())
    gt = photos["astronaut"][: 3 * rows + 17, :width].astype(np.float64) / 255
    pred = _noise(gt, rng)
    reference = structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=1, channel_axis=-1)
    values = [metrics.ssim(_t(pred, dtype).contiguous(memory_format=layout),
                           _t(gt, dtype).contiguous(memory_format=layout)).item()
              for layout in (torch.contiguous_format, torch.channels_last)]
    tolerance = 3e-7 if dtype == torch.float32 else 1e-10
    assert abs(values[0] - reference) <= tolerance and abs(values[1] - reference) <= tolerance


def _hard_pairs(photos):
    """(label, pred, gt) float32 (H,W,3) pairs where float32 second moments cancel: flat white, grey and
    black backgrounds around a photo, a half-white frame identical on its white half, dark frames of
    small values, bright and mid-grey frames of tiny contrast, and a whole real photo with noise."""
    rng = np.random.default_rng(5)
    face = photos["astronaut"].astype(np.float32) / 255

    def noisy(x, sigma):
        return np.clip(x + rng.normal(0, sigma, x.shape), 0, 1).astype(np.float32)

    yield "astronaut 512 + noise", noisy(face, 0.05), face
    for background in (1.0, 0.7, 0.0):
        gt = np.full((256, 256, 3), background, np.float32)
        gt[64:192, 64:192] = face[200:328, 200:328]
        pred = gt.copy()
        pred[64:192, 64:192] = noisy(gt[64:192, 64:192], 0.03)
        yield f"background {background}", pred, gt
    half = np.ones((256, 256, 3), np.float32)
    half[:, 128:] = face[100:356, 200:328]
    pred = half.copy()
    pred[:, 128:] = noisy(half[:, 128:], 0.02)
    yield "half white", pred, half
    dark = face[:256, :256] * 0.02
    yield "dark", noisy(dark, 0.001), dark
    for level in (0.97, 0.5):
        flat = (level + 0.002 * rng.standard_normal((96, 128, 3))).astype(np.float32)
        yield f"flat {level}", (flat + 0.001 * rng.standard_normal(flat.shape)).astype(np.float32), flat


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_float32_ssim_keeps_float64_precision_where_moments_cancel(photos, layout):
    """float32 frames are filtered in float32 through the frames' sum and difference (see
    ``metrics.image._ssim_opencv``): within 3e-7 of scikit-image's float64 SSIM of the same values (the
    textbook moments filtered in float32 miss by over 1e-6 on the real photo), masked or not,
    interleaved (channels-last) or planar."""
    def frame(x):
        return _t(x).contiguous(memory_format=layout)

    for index, (label, pred, gt) in enumerate(_hard_pairs(photos)):
        pred64, gt64 = pred.astype(np.float64), gt.astype(np.float64)
        _, full = structural_similarity(gt64, pred64, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1, channel_axis=-1, full=True)
        crop = (slice(5, -5), slice(5, -5))
        assert abs(metrics.ssim(frame(pred), frame(gt)).item() - full[crop].mean()) <= 3e-7, label
        mask = _random_mask(gt.shape[:2], index)
        mask_t = torch.from_numpy(mask.astype(np.float32))[None, None]
        reference = full[crop][mask[crop]].mean()
        assert abs(metrics.ssim(frame(pred), frame(gt), mask_t).item() - reference) <= 3e-7, label
