"""Per-frame image metrics: functional kernels over float tensors (N,3,H,W) in [0,1].

Every kernel returns one value per frame, shape (N,), so that results can be averaged per frame
and then over frames, as every avatar repository does (pooling the MSE of a whole video would
give a different PSNR). An optional mask (N,1,H,W) in [0,1] restricts the metric to its pixels
(weighted by the mask value). Kernels compute in the dtype of their input (float32 by default;
pass float64 tensors for float64).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from metrics.errors import InputError, WeightsMissingError
from metrics.weights import checked_state, from_manifest, usable_weight

# ---------------------------------------------------------------------------- input checks


def check_pair(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Shapes (N,C,H,W) equal, finite values, mask (N,1,H,W) or None; errors name the argument."""
    if pred.ndim != 4 or gt.ndim != 4:
        raise InputError(f"pred and gt must be (N,C,H,W) tensors, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if pred.shape != gt.shape:
        raise InputError(f"pred shape {tuple(pred.shape)} differs from gt shape {tuple(gt.shape)}")
    if not _all_finite(pred):
        raise InputError("pred has non-finite values (NaN or inf)")
    if not _all_finite(gt):
        raise InputError("gt has non-finite values (NaN or inf)")
    if mask is not None:
        expected = (pred.shape[0], 1, pred.shape[2], pred.shape[3])
        if tuple(mask.shape) != expected:
            raise InputError(f"mask shape {tuple(mask.shape)} should be {expected}")
        if not _all_finite(mask):
            raise InputError("mask has non-finite values (NaN or inf)")


def _all_finite(values: torch.Tensor) -> bool:
    """True when every element is finite: min and max propagate NaN and show inf, in one pass
    and without a full-size boolean temporary."""
    if not values.is_floating_point() or values.numel() == 0:
        return True
    order = sorted(range(values.ndim), key=lambda d: -values.stride(d))
    dense = values.permute(order)  # the same memory in storage order: reducing it needs no copy
    low, high = torch.aminmax(dense if dense.is_contiguous() else values)
    return bool(torch.isfinite(low) and torch.isfinite(high))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over (C,H,W) per frame; with a mask, the mask-weighted mean (mask broadcast over C)."""
    dims = tuple(range(1, values.ndim))  # reducing over dims, not a flattened view, avoids a layout copy
    if mask is None:
        return values.mean(dim=dims)
    weights = mask.to(values.dtype)
    total = weights.sum(dim=dims) * (values.shape[1] / weights.shape[1])
    if (total <= 0).any():
        empty = (total <= 0).nonzero().flatten().tolist()
        raise InputError(f"mask is empty for frame {empty[0]} of the batch (counted from 0; {len(empty)} empty in all)")
    return (values * weights).sum(dim=dims) / total


# ---------------------------------------------------------------------------- L1, L2, PSNR


def l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error per frame (over channels and, with a mask, over masked pixels)."""
    check_pair(pred, gt, mask)
    return _in_chunks(lambda p, g, m: _masked_mean((p - g).abs_(), m), pred, gt, mask)


def l2(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per frame: the paper's "L2" (images in [0,1])."""
    check_pair(pred, gt, mask)
    return _in_chunks(lambda p, g, m: _masked_mean((p - g).square_(), m), pred, gt, mask)


def psnr_from_mse(mse: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR = 10 log10(data_range^2 / MSE); +inf for identical frames (MSE 0)."""
    return 10.0 * torch.log10(data_range**2 / mse)


def psnr(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per frame from that frame's MSE (not from a pooled MSE)."""
    return psnr_from_mse(l2(pred, gt, mask), data_range)


# ---------------------------------------------------------------------------- SSIM


def gaussian_kernel1d(sigma: float, radius: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian exp(-x^2/(2 sigma^2)) on x = -radius..radius."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def _filter_valid(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' correlation of every channel of (N,C,H,W) with the 1-D ``kernel``."""
    channels = images.shape[1]
    size = kernel.numel()
    horizontal = kernel.view(1, 1, 1, size).expand(channels, 1, 1, size).contiguous()
    vertical = kernel.view(1, 1, size, 1).expand(channels, 1, size, 1).contiguous()
    out = F.conv2d(images, horizontal, groups=channels)
    return F.conv2d(out, vertical, groups=channels)


def ssim_maps(
    pred: torch.Tensor,
    gt: torch.Tensor,
    kernel: torch.Tensor,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
    cov_norm: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps (N,C,H-k+1,W-k+1) of Wang et al. 2004 with window ``kernel``."""
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    # SSIM needs only var_x + var_y, so x^2 + y^2 is filtered as one plane: four planes, not five.
    # They are stacked along the batch in channels-last memory: oneDNN's depthwise convolution is
    # several times faster on it than on NCHW on CPU, and each quarter of the result is a dense
    # block again, so the algebra below needs no layout copy.
    stacked = torch.cat([pred, gt, pred * pred + gt * gt, pred * gt], dim=0)
    filtered = _filter_valid(stacked.contiguous(memory_format=torch.channels_last), kernel)
    mu_x, mu_y, m_sq, m_xy = filtered.chunk(4, dim=0)
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x + mu_y * mu_y
    cs_map = (2 * cov_norm * (m_xy - mu_xy) + c2) / (cov_norm * (m_sq - mu_sq) + c2)
    luminance = (2 * mu_xy + c1) / (mu_sq + c1)
    return luminance * cs_map, cs_map


def _in_chunks(function, *tensors: torch.Tensor | None, elements: int = 1 << 20) -> torch.Tensor:
    """Apply ``function`` to slices of a few frames at a time and concatenate the per-frame results.

    Working on about a million elements at a time keeps every temporary small enough for the
    allocator to reuse memory instead of faulting in fresh pages, which dominates on CPU at 512 px.
    """
    first = tensors[0]
    step = max(1, elements // max(1, first[0].numel()))
    if first.shape[0] <= step:
        return function(*tensors)
    parts = []
    for start in range(0, first.shape[0], step):
        parts.append(function(*(t[start : start + step] if t is not None else None for t in tensors)))
    return torch.cat(parts)


def ssim(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    data_range: float = 1.0,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """SSIM per frame, Wang et al. 2004, exactly as scikit-image's ``structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1``.

    Gaussian window of radius int(truncate*sigma+0.5) (11 taps for sigma 1.5), population
    covariance, statistics only where the window fits (scikit-image filters with reflection and
    then crops the same border, so the numbers are identical), mean over the valid region and the
    channels. With a mask, the SSIM map is averaged over the mask cropped to the valid region.
    """
    check_pair(pred, gt, mask)
    radius = int(truncate * sigma + 0.5)
    if min(pred.shape[-2:]) < 2 * radius + 1:
        raise InputError(f"SSIM needs frames of at least {2 * radius + 1}x{2 * radius + 1} pixels, got {pred.shape[-1]}x{pred.shape[-2]}")
    if _opencv_can_filter(pred):
        return _ssim_opencv(pred, gt, mask, gaussian_kernel1d(sigma, radius, dtype=torch.float64).numpy(), radius,
                            data_range, k1, k2)
    kernel = gaussian_kernel1d(sigma, radius, dtype=pred.dtype, device=pred.device)

    def per_chunk(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        ssim_map, _ = ssim_maps(p, g, kernel, data_range, k1, k2)
        return _masked_mean(ssim_map, None if m is None else m[..., radius:-radius, radius:-radius])

    return _in_chunks(per_chunk, pred, gt, mask)


def _opencv_can_filter(frames: torch.Tensor) -> bool:
    """Whether :func:`_ssim_opencv` applies: CPU float tensors of at most 4 channels, no autograd."""
    return (frames.device.type == "cpu" and frames.dtype in (torch.float32, torch.float64)
            and frames.shape[1] <= 4 and not frames.requires_grad)


STRIP_BYTES = 1 << 19
"""Bytes of one map of an OpenCV SSIM strip; a strip's rows are this over a row's bytes (256 rows of a
512-wide float32 plane, 85 of a 512-wide interleaved RGB float32 image). Smaller strips keep the maps
of a strip in cache but repeat the window's context rows and the per-call overhead of a dozen OpenCV
calls more often; larger ones spill (the measurements: docs/performance.md, "SSIM strip size")."""


STRIP_BUFFERS = ("t", "d", "tt", "dd", "f_t", "f_d", "f_tt", "f_dd")
"""The OpenCV SSIM kernel's buffers of a strip's input rows: t, d, their squares, and the four filtered."""
MAP_BUFFERS = ("t_sq", "d_sq", "var_t", "var_d", "numerator", "denominator")
"""Its buffers of the strip's valid rows (``t_sq`` and ``d_sq`` are reused for the contrast factors)."""


def _ssim_shift(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """The constant subtracted from x + y (twice) before float32 filtering of a strip: the midrange of
    the strip's values (contiguous arrays of any shape), rounded to a multiple of data_range / 256.
    Any constant gives the same variances, since every window of the strip lies inside it; the midrange
    makes the shifted values smallest, so their squares round least."""
    import cv2

    extremes = [cv2.minMaxLoc(strip.reshape(strip.shape[0], -1))[:2] for strip in (x, y)]
    low, high = min(low for low, _ in extremes), max(high for _, high in extremes)
    return float(np.float32(round((low + high) / 2 / data_range * 256) / 256 * data_range))


def _ssim_opencv(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None, kernel: np.ndarray, radius: int,
                 data_range: float, k1: float, k2: float) -> torch.Tensor:
    """:func:`ssim` on the CPU: the same statistics, filtered by OpenCV's separable filter.

    Why: OpenCV's vectorised row/column filter is several times faster than torch's depthwise
    convolution on CPU, and it releases the GIL, so frames are filtered on
    ``torch.get_num_threads()`` threads. A frame in channels-last memory is filtered as one
    interleaved (H, W, C) image, any other as contiguous (H, W) planes, so neither is copied; both
    are filtered in strips of ``STRIP_BYTES`` per map with ``radius`` rows of context. The border is
    filtered with reflection and then cropped, so only the valid region, where the window fits,
    enters the mean (as scikit-image does).

    Precision: frames are filtered in their own dtype. OpenCV's float32 filter is vectorised and its
    float64 one is not (0.29 vs 0.93 ms per 512x512 plane), but in float32 the textbook moments
    var_x + var_y = E[x^2 + y^2] - mu_x^2 - mu_y^2 and cov = E[xy] - mu_x mu_y lose digits to
    cancellation, and SSIM divides them by c2 = 9e-4. So the statistics are taken of the sum
    t = x + y - 2 shift and the difference d = x - y instead (the same four filtered maps):
    var_x + var_y = (var_t + var_d) / 2 and 2 cov = (var_t - var_d) / 2, likewise for the means, so

        SSIM = (T^2 - D^2 + 2 c1) (var_t - var_d + 2 c2) / ((T^2 + D^2 + 2 c1) (var_t + var_d + 2 c2)).

    d is small wherever the prediction is close to the ground truth, so var_d is accurate, and an
    error e in var_t moves the ratio by only about 2 e var_d / (var_t + var_d + 2 c2)^2; the common
    shift (:func:`_ssim_shift`, the middle of each strip's values) keeps t, and so the rounding of var_t,
    small.
    Measured against float64 on real photos with noise, white, grey and black backgrounds, half-white,
    dark and nearly flat frames: within 6e-8 (the textbook moments in float32: up to 1.3e-6).
    """
    import cv2

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    dtype = np.float32 if pred.dtype == torch.float32 else np.float64
    kernel = np.asarray(kernel, dtype=dtype)
    inner_columns = slice(radius, -radius)

    workspaces = threading.local()  # each thread's strip buffers, reused for every strip it filters

    def workspace(rows: int, columns: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Buffers for strips of up to ``rows`` input rows (``columns``: the rest of the shape), so that no
        strip allocates: fresh arrays of this size are mapped and faulted in anew whenever the allocator
        has returned the last ones to the system (measured: 8% of the SSIM time at two threads)."""
        key = (rows, columns)
        if getattr(workspaces, "key", None) != key:
            cropped = (rows - 2 * radius, columns[0] - 2 * radius, *columns[1:])
            workspaces.key = key
            workspaces.buffers = {**{name: np.empty((rows, *columns), dtype) for name in STRIP_BUFFERS},
                                  **{name: np.empty(cropped, dtype) for name in MAP_BUFFERS}}
        return workspaces.buffers

    def blur(image: np.ndarray, out: np.ndarray) -> np.ndarray:
        cv2.sepFilter2D(image, -1, kernel, kernel, dst=out, borderType=cv2.BORDER_REFLECT)
        return out[radius:-radius, inner_columns]

    def strip_map(x: np.ndarray, y: np.ndarray, buffers: dict[str, np.ndarray]) -> np.ndarray:
        """The SSIM map of one strip: input rows with ``radius`` rows of context above and below, so
        cropping the filtered strip leaves exactly the rows a whole-frame filter gives. The map is a
        view into ``buffers`` (valid until the next strip).

        In terms of t = x + y - 2 shift and d = x - y (see :func:`_ssim_opencv` for why):
        SSIM = (T^2 - D^2 + 2 c1) (var_t - var_d + 2 c2) / ((T^2 + D^2 + 2 c1) (var_t + var_d + 2 c2)),
        T = mu_t + 2 shift and D = mu_d the window means, var_t and var_d the window variances;
        each factor one fused OpenCV pass (addWeighted: a * alpha + b * beta + gamma)."""
        rows = len(x)
        b = {name: buffer[: rows if name in STRIP_BUFFERS else rows - 2 * radius] for name, buffer in buffers.items()}
        shift = _ssim_shift(x, y, data_range)
        total = cv2.addWeighted(x, 1.0, y, 1.0, -2.0 * shift, dst=b["t"])
        difference = cv2.subtract(x, y, dst=b["d"])
        mu_t, mu_d = blur(total, b["f_t"]), blur(difference, b["f_d"])
        m_tt = blur(cv2.multiply(total, total, dst=b["tt"]), b["f_tt"])
        m_dd = blur(cv2.multiply(difference, difference, dst=b["dd"]), b["f_dd"])
        mu_t_sq, mu_d_sq = cv2.multiply(mu_t, mu_t, dst=b["t_sq"]), cv2.multiply(mu_d, mu_d, dst=b["d_sq"])
        var_t, var_d = cv2.subtract(m_tt, mu_t_sq, dst=b["var_t"]), cv2.subtract(m_dd, mu_d_sq, dst=b["var_d"])
        mean_t = np.add(mu_t, dtype(2.0 * shift), out=b["t_sq"])  # T, the mean of x + y
        mean_t_sq = cv2.multiply(mean_t, mean_t, dst=b["t_sq"])
        numerator = cv2.addWeighted(mean_t_sq, 1.0, mu_d_sq, -1.0, 2.0 * c1, dst=b["numerator"])
        denominator = cv2.addWeighted(mean_t_sq, 1.0, mu_d_sq, 1.0, 2.0 * c1, dst=b["denominator"])
        contrast_numerator = cv2.addWeighted(var_t, 1.0, var_d, -1.0, 2.0 * c2, dst=b["t_sq"])
        contrast_denominator = cv2.addWeighted(var_t, 1.0, var_d, 1.0, 2.0 * c2, dst=b["d_sq"])
        cv2.multiply(numerator, contrast_numerator, dst=numerator)
        cv2.multiply(denominator, contrast_denominator, dst=denominator)
        return cv2.divide(numerator, denominator, dst=numerator)

    def images(index: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """pred's and gt's frame ``index`` as one (H, W, C) image each when pred's frame is in
        channels-last memory (OpenCV filters interleaved channels itself, and no copy is made), else as
        (C, H, W) stacks of contiguous planes; and whether they are interleaved."""
        interleaved = pred.shape[1] > 1 and pred[index].permute(1, 2, 0).is_contiguous()

        def array(frames: torch.Tensor) -> np.ndarray:
            frame = frames[index].detach()
            return np.ascontiguousarray((frame.permute(1, 2, 0) if interleaved else frame).numpy(), dtype=dtype)

        return array(pred), array(gt), interleaved

    def one(index: int) -> float:
        frame_x, frame_y, interleaved = images(index)
        channels = pred.shape[1]
        height, width = pred.shape[-2:]
        pairs = [(frame_x, frame_y)] if interleaved else list(zip(frame_x, frame_y))
        weights = None if mask is None else np.ascontiguousarray(mask[index, 0].detach().numpy(), dtype=dtype)
        row_bytes = width * frame_x.itemsize * (channels if interleaved else 1)
        strip_rows = max(1, STRIP_BYTES // row_bytes)
        buffers = workspace(min(strip_rows, height - 2 * radius) + 2 * radius, pairs[0][0].shape[1:])
        total = 0.0
        for x, y in pairs:
            for top in range(radius, height - radius, strip_rows):
                bottom = min(top + strip_rows, height - radius)
                ssim_map = strip_map(x[top - radius : bottom + radius], y[top - radius : bottom + radius], buffers)
                if weights is not None:
                    strip_weights = weights[top:bottom, inner_columns]
                    ssim_map = ssim_map * (strip_weights[..., None] if interleaved else strip_weights)
                total += float(ssim_map.sum(dtype=np.float64))
        if weights is None:
            return total / ((height - 2 * radius) * (width - 2 * radius) * channels)
        count = float(weights[radius:-radius, inner_columns].sum(dtype=np.float64)) * channels
        if count <= 0:
            raise InputError("mask is empty for at least one frame")
        return total / count

    workers = min(torch.get_num_threads(), len(pred))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            values = list(pool.map(one, range(len(pred))))
    else:
        values = [one(i) for i in range(len(pred))]
    return torch.tensor(values, dtype=pred.dtype)


def ssim_uniform(
    pred: torch.Tensor, gt: torch.Tensor, win_size: int = 7, data_range: float = 2.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """SSIM with a ``win_size`` uniform window and sample covariance: the defaults of old
    scikit-image ``compare_ssim(..., multichannel=True)`` on float images, whose data range was
    taken from the float dtype range (-1, 1), i.e. 2. NeRFace's evaluation used it.
    """
    check_pair(pred, gt, mask)
    if min(pred.shape[-2:]) < win_size:
        raise InputError(f"SSIM needs frames of at least {win_size}x{win_size} pixels")
    kernel = torch.full((win_size,), 1.0 / win_size, dtype=pred.dtype, device=pred.device)
    count = win_size * win_size
    ssim_map, _ = ssim_maps(pred, gt, kernel, data_range, cov_norm=count / (count - 1))
    pad = (win_size - 1) // 2
    if mask is not None:
        mask = mask[..., pad : mask.shape[-2] - pad, pad : mask.shape[-1] - pad]
    return _masked_mean(ssim_map, mask)


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_smallest_side(win_size: int = 11) -> int:
    """The side MS-SSIM's frames must exceed: the window must fit the coarsest of its five scales."""
    return (win_size - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1)


def ms_ssim(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5, win_size: int = 11) -> torch.Tensor:
    """Multi-scale SSIM per frame (Wang, Simoncelli and Bovik 2003) with the five standard weights.

    Each scale uses the 11-tap Gaussian window in 'valid' mode; between scales the images are
    average-pooled by 2 (odd sides padded by one zero on each side, as ``pytorch_msssim`` does,
    which NHA's evaluation uses). Contrast-structure terms are clamped at 0 before the product.
    """
    check_pair(pred, gt)
    levels = len(MS_SSIM_WEIGHTS)
    smallest = ms_ssim_smallest_side(win_size)
    if min(pred.shape[-2:]) <= smallest:
        raise InputError(f"MS-SSIM needs frames larger than {smallest} pixels on each side, got {pred.shape[-1]}x{pred.shape[-2]}")
    kernel = gaussian_kernel1d(sigma, win_size // 2, dtype=pred.dtype, device=pred.device)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=pred.dtype, device=pred.device)
    terms = []
    for level in range(levels):
        ssim_map, cs_map = ssim_maps(pred, gt, kernel, data_range)
        if level < levels - 1:
            terms.append(torch.relu(cs_map.flatten(2).mean(-1)))
            padding = [side % 2 for side in pred.shape[2:]]
            pred = F.avg_pool2d(pred, kernel_size=2, padding=padding)
            gt = F.avg_pool2d(gt, kernel_size=2, padding=padding)
        else:
            terms.append(torch.relu(ssim_map.flatten(2).mean(-1)))
    stacked = torch.stack(terms, dim=0)  # (levels, N, C)
    per_channel = torch.prod(stacked ** weights.view(-1, 1, 1), dim=0)
    return per_channel.mean(1)


# ---------------------------------------------------------------------------- LPIPS

_TRUNK_MODELS = {"alex": "alexnet", "vgg": "vgg16"}  # LPIPS net -> torchvision builder


def lpips_trunk_state(path: str | Path, net: str = "alex") -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a torchvision-format AlexNet / VGG-16 state dict, checked by name
    and shape against torchvision's model (a classifier in the file is allowed and ignored).

    Raises:
        WeightsUnusableError: the file is corrupt or truncated, or its trunk keys or shapes do not fit.
    """
    import torchvision

    model = _TRUNK_MODELS[net]

    def trunk() -> torch.nn.Module:
        return torch.nn.ModuleDict({"features": getattr(torchvision.models, model)(weights=None).features})

    return checked_state(path, trunk, f"torchvision {model} (its features)", allow_extra=True)


ALEXNET = from_manifest("lpips-alex", check=lambda path: lpips_trunk_state(path, "alex"))
VGG16 = from_manifest("lpips-vgg", check=lambda path: lpips_trunk_state(path, "vgg"))
LPIPS_WEIGHTS = {"alex": ALEXNET.key, "vgg": VGG16.key}  # LPIPS net -> manifest name


def lpips_weights(options: dict) -> dict[str, str | None]:
    """The weight file LPIPS (and tLP) use with ``options``: {manifest name: explicit path or None}."""
    net = options.get("net", "alex")
    return {LPIPS_WEIGHTS[net]: options.get("backbone_weights")} if net in LPIPS_WEIGHTS else {}


def lpips_trunk_path(net: str = "alex", backbone_weights: str | Path | None = None) -> Path:
    """The torchvision-format state dict of the LPIPS trunk (explicit path, CABENCH_WEIGHTS, hub cache),
    checked to load and fit (:func:`metrics.weights.usable_weight`)."""
    if net not in _TRUNK_MODELS:
        raise InputError(f"lpips net must be one of {', '.join(_TRUNK_MODELS)}, got {net!r}")
    return usable_weight(LPIPS_WEIGHTS[net], backbone_weights)


def lpips_unavailable(options: dict) -> str | None:
    try:
        import lpips as _  # noqa: F401
    except ImportError:
        return "the `lpips` package is not installed (pip install lpips)"
    try:
        lpips_trunk_path(options.get("net", "alex"), options.get("backbone_weights"))
    except WeightsMissingError as error:
        return str(error)
    return None


def _lpips_model(net: str, trunk_path: str, device: str, spatial: bool = False) -> torch.nn.Module:
    """The cached LPIPS model for this trunk file (its modification time and size are part of the key);
    ``spatial``: the model that gives the per-pixel distance map (its own object: a cached model is
    never reconfigured, so threads sharing one see the same model throughout)."""
    stat = Path(trunk_path).stat()
    return _build_lpips_model(net, trunk_path, device, stat.st_mtime_ns, stat.st_size, spatial)


@lru_cache(maxsize=8)
def _build_lpips_model(net: str, trunk_path: str, device: str, mtime_ns: int, size: int,
                       spatial: bool = False) -> torch.nn.Module:
    """Build the `lpips` package's model (v0.1 linear heads from the package) with our trunk weights.

    The trunk is loaded from a torchvision-format state dict (:func:`lpips_trunk_state`):
    ``features.I.*`` maps to the package's ``sliceK.I.*`` modules, strictly.
    """
    import lpips as lpips_package

    model = lpips_package.LPIPS(net=net, version="0.1", pnet_rand=True, spatial=spatial, verbose=False)
    trunk = lpips_trunk_state(trunk_path, net)
    model.net.load_state_dict({name: trunk["features." + name.split(".", 1)[1]] for name in model.net.state_dict()},
                              strict=True)
    return model.eval().requires_grad_(False).to(device)


def lpips(
    pred: torch.Tensor,
    gt: torch.Tensor,
    net: str = "alex",
    backbone_weights: str | Path | None = None,
    mask: torch.Tensor | None = None,
    normalize: bool = True,
    batch_size: int = 16,
) -> torch.Tensor:
    """LPIPS v0.1 per frame, computed by the `lpips` package.

    ``normalize=True`` maps [0,1] inputs to [-1,1] (2x-1), the range the package expects;
    ``normalize=False`` feeds the tensors as they are (what NeRFace's script did with [0,1] images).
    The trunk weights are resolved by :func:`lpips_trunk_path`. With a mask, the package's spatial
    map is averaged over the mask. Runs on the device of ``pred`` in batches of ``batch_size``.
    """
    check_pair(pred, gt, mask)
    model = _lpips_model(net, str(lpips_trunk_path(net, backbone_weights)), str(pred.device), spatial=mask is not None)
    values = []
    with torch.no_grad():
        for start in range(0, pred.shape[0], batch_size):
            p = pred[start : start + batch_size].float()
            g = gt[start : start + batch_size].float()
            if mask is None:
                values.append(model(p, g, normalize=normalize).flatten())
            else:  # the package's per-pixel distance map, upsampled to H x W, averaged over the mask
                distance_map = model(p, g, normalize=normalize)
                values.append(_masked_mean(distance_map, mask[start : start + batch_size].float()))
    return torch.cat(values).to(pred.dtype)


def psnr_with_epsilon(mse: torch.Tensor, max_value: float = 1.0, eps: float = 1e-8) -> torch.Tensor:
    """PSNR as 20 log10(max / (RMSE + eps)): the IMavatar / PointAvatar scripts' formula."""
    return 20.0 * torch.log10(max_value / (torch.sqrt(mse) + eps))


def ssim_pytorch_metrics(pred: torch.Tensor, gt: torch.Tensor, win_size: int = 11, sigma: float = 1.5,
                           data_range: float = 1.0) -> torch.Tensor:
    """Per-frame SSIM as the ``img_ssim`` of IMavatar's ``calculate_metrics.py`` and PointAvatar's
    ``code/utils/metrics.py`` (both from huster-wgm's Pytorch-metrics) computes it: float32
    throughout, the window the outer product of a 1-D Gaussian made and normalised in float32, one
    2-D depthwise convolution per moment ('valid' region) on (1,C,H,W) frames in channels-last
    memory (the layout ``torch.as_tensor`` gives the scripts' transposed HWC arrays), the textbook
    moments ``E[x^2] - mu^2`` (no shift: their float32 cancellation is part of the scripts'
    numbers), the map averaged over channels, rows and columns in that order; one frame at a time.

    The convention kept is the scripts' rounding: the same SSIM in float64, or with :func:`ssim`'s
    cancellation-free float32 kernel, differed from PointAvatar's by up to 3.6e-5 on real 512 px
    frames with alpha and by up to 4.4e-6 on the calibration table's frames, where this function
    gives the scripts' recorded numbers bit for bit (tests/test_calibration.py). Frames in [0,1]:
    the scripts' range rule (``max > 128`` -> 255, ``min < -0.5`` -> -1) then gives ``data_range`` 1.
    """
    check_pair(pred, gt)
    channels = pred.shape[1]
    offsets = [math.exp(-((x - win_size // 2) ** 2) / float(2 * sigma**2)) for x in range(win_size)]
    line = torch.tensor(offsets, dtype=torch.float32)
    line = (line / line.sum()).unsqueeze(1)
    window = line.mm(line.t()).expand(channels, 1, win_size, win_size).contiguous().to(pred.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for x, y in zip(pred.float(), gt.float()):
        x = x[None].contiguous(memory_format=torch.channels_last)
        y = y[None].contiguous(memory_format=torch.channels_last)
        mu_x = F.conv2d(x, window, groups=channels)
        mu_y = F.conv2d(y, window, groups=channels)
        mu_x_sq, mu_y_sq, mu_xy = mu_x.pow(2), mu_y.pow(2), mu_x * mu_y
        var_x = F.conv2d(x * x, window, groups=channels) - mu_x_sq
        var_y = F.conv2d(y * y, window, groups=channels) - mu_y_sq
        cov = F.conv2d(x * y, window, groups=channels) - mu_xy
        contrast = 2.0 * cov + c2
        spread = var_x + var_y + c2
        ssim_map = ((2 * mu_xy + c1) * contrast) / ((mu_x_sq + mu_y_sq + c1) * spread)
        values.append(ssim_map.mean(1).mean(1).mean(1))
    return torch.cat(values).to(pred.dtype)
