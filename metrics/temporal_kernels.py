"""The functional kernels of the temporal metrics (:mod:`metrics.temporal` holds their streaming
evaluators and registry entries, as :mod:`metrics.image` and :mod:`metrics.frame` are split): tOF and
TecoGAN's crop, bilinear resampling by a flow, motion boundaries and the occlusion mask of Lai et al.
2018, the warping error, end-point errors and landmark weights. Each takes and returns tensors; see
:mod:`metrics.temporal` for the conventions (flows in pixels, (N,2,H,W), ``src[y,x] ~ dst[y+v, x+u]``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from metrics.errors import InputError
from metrics.flow import (
    Mapper,
    flow_magnitude,
    serial_map,
)

TOF_CROPS = ("tecogan", "none")
WARP_VARIANTS = ("lai", "central")


def tecogan_crop(height: int, width: int) -> tuple[slice, slice]:
    """TecoGAN's ``crop_8x8``: the largest multiple of 32 on each side that leaves at least 8 px
    on both ends, centred (144 -> rows 8..136, 300 -> rows 22..278)."""
    sides = []
    for size in (height, width):
        kept = (size // 32) * 32
        while kept > size - 16:
            kept -= 32
        if kept <= 0:
            raise InputError(f"tof with TecoGAN's crop needs frames of at least 48x48 pixels, got {width}x{height}; "
                             "use crop='none'")
        start = (size - kept) // 2
        sides.append(slice(start, start + kept))
    return sides[0], sides[1]


def tof(flow_gt: torch.Tensor, flow_pred: torch.Tensor, crop: str = "tecogan") -> torch.Tensor:
    """Per pair (N,): mean over pixels of ||flow_gt - flow_pred||_2, over ``crop`` of both flows."""
    if crop not in TOF_CROPS:
        raise InputError(f"tof: crop must be one of {', '.join(TOF_CROPS)}, got {crop!r}")
    if crop == "tecogan":
        rows, cols = tecogan_crop(*flow_gt.shape[-2:])
        flow_gt, flow_pred = flow_gt[..., rows, cols], flow_pred[..., rows, cols]
    return flow_magnitude(flow_gt - flow_pred).flatten(1).mean(1)


def resample(images: torch.Tensor, flow: torch.Tensor, map_: Mapper = None) -> torch.Tensor:
    """Backward warp as FlowNet2's ``Resample2d`` (the layer Lai et al. warp with):
    out[y, x] = bilinear images at (x + u, y + v), in pixel coordinates, the four neighbour indices
    clamped to the frame (so borders are replicated).

    The position and its fractional part are float32, the weights and products double, and the
    sum is rounded to float32 after each of the four terms, in the kernel's order, so that the
    result is the kernel's to the last bit. Returns float32 (N,C,H,W). Frames are warped one at a
    time (every temporary a frame's size, cache-sized, instead of the batch's), by ``map_`` when
    given (torch releases the GIL, so a thread pool warps frames side by side).
    """
    n, channels, height, width = images.shape
    ys = torch.arange(height, dtype=torch.float32, device=images.device).view(height, 1)
    xs = torch.arange(width, dtype=torch.float32, device=images.device).view(1, width)
    flow = flow.float()
    flat = images.float().reshape(n, channels, height * width)

    def one(i: int) -> torch.Tensor:
        # the four neighbours picked by index_select; same arithmetic in the same order as the kernel
        x, y = xs + flow[i, 0], ys + flow[i, 1]
        x0, y0 = torch.floor(x), torch.floor(y)
        a, b = (x - x0).double().reshape(-1), (y - y0).double().reshape(-1)
        column, row = x0.long().reshape(-1), y0.long().reshape(-1)
        left, right = column.clamp(0, width - 1), (column + 1).clamp_(0, width - 1)
        top, bottom = row.clamp(0, height - 1).mul_(width), (row + 1).clamp_(0, height - 1).mul_(width)
        terms = (((1.0 - a) * (1.0 - b), top, left), (a * (1.0 - b), top, right),
                 ((1.0 - a) * b, bottom, left), (a * b, bottom, right))
        value = None
        for weight, rows, cols in terms:
            total = flat[i].index_select(1, rows + cols).double().mul_(weight)
            total.add_(0.0 if value is None else value)  # 0.0 + term, as the kernel (turns -0.0 into 0.0)
            value = total.float()
        return value

    if n == 0:
        return torch.empty(0, channels, height, width, dtype=torch.float32, device=images.device)
    frames = (map_ or serial_map)(one, range(n))
    return torch.stack(list(frames)).reshape(n, channels, height, width)


def motion_boundary(flow: torch.Tensor, differences: str = "forward") -> torch.Tensor:
    """Motion-boundary pixels (N,H,W) of ``flow``: |grad u|^2 + |grad v|^2 > 0.01 |flow|^2 + 0.002.

    ``forward``: Lai et al.'s ``compute_flow_gradients``, differences with the next column / row
    in float32 (0 in the last column / row), their squares summed in float64; ``central``:
    ``torch.gradient`` (central inside, one-sided at the borders).
    """
    flow = flow.float()
    if differences == "forward":
        du = torch.zeros_like(flow, dtype=torch.float64)
        dv = torch.zeros_like(flow, dtype=torch.float64)
        du[..., :, :-1] = flow[..., :, :-1] - flow[..., :, 1:]
        dv[..., :-1, :] = flow[..., :-1, :] - flow[..., 1:, :]
    else:
        dv, du = torch.gradient(flow, dim=(2, 3))
    gradient = (du**2 + dv**2).sum(1)
    return gradient > 0.01 * (flow[:, 0] ** 2 + flow[:, 1] ** 2) + 0.002


def occlusion_mask(forward: torch.Tensor, backward: torch.Tensor, variant: str = "lai", map_: Mapper = None) -> torch.Tensor:
    """Occluded pixels (N,1,H,W) of frame t, from flows t->t+1 (``forward``) and t+1->t.

    Forward-backward check: |fw + bw(x+fw)|^2 > 0.01 (|fw|^2 + |bw(x+fw)|^2) + 0.5 (float32, as
    Lai et al.'s ``detect_occlusion``), or a motion boundary of the forward flow (Ruder et al.
    2016 thresholds; forward differences for ``variant="lai"``, central for ``"central"``).
    """
    if variant not in WARP_VARIANTS:
        raise InputError(f"warp_error: variant must be one of {', '.join(WARP_VARIANTS)}, got {variant!r}")
    forward, backward = forward.float(), backward.float()
    backward_at_target = resample(backward, forward, map_)
    total = forward + backward_at_target
    squared = lambda f: f[:, 0] ** 2 + f[:, 1] ** 2  # noqa: E731
    inconsistent = squared(total) > 0.01 * (squared(backward_at_target) + squared(forward)) + 0.5
    boundary = motion_boundary(forward, "forward" if variant == "lai" else "central")
    return (inconsistent | boundary)[:, None]


def warp_error(frame_t: torch.Tensor, frame_next: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor,
               variant: str = "lai", map_: Mapper = None) -> torch.Tensor:
    """Per pair (N,): masked MSE between frame t and frame t+1 warped onto t by ``forward``."""
    visible = ~occlusion_mask(forward, backward, variant, map_)
    return masked_warp_error(frame_t, frame_next, forward, visible, variant, map_)


def masked_warp_error(frame_t: torch.Tensor, frame_next: torch.Tensor, forward: torch.Tensor, visible: torch.Tensor,
                      variant: str = "lai", map_: Mapper = None) -> torch.Tensor:
    """:func:`warp_error` with the visible-pixel mask (N,1,H,W) given: sum over visible pixels and
    channels of the squared difference, divided by their count. A pair with no visible pixel
    scores 0 with ``variant="lai"`` (the script divides the zero masked sum by the pixel count)
    and the MSE over all pixels with ``"central"``."""
    visible = visible.to(torch.float32)
    squared = (resample(frame_next, forward, map_) - frame_t.float()) ** 2
    weight = visible.expand_as(squared)
    count = weight.flatten(1).sum(1)
    masked = (squared * weight).flatten(1).sum(1) / count.clamp_min(1)
    fallback = torch.zeros_like(masked) if variant == "lai" else squared.flatten(1).mean(1)
    return torch.where(count > 0, masked, fallback)


def end_point_error(flow_a: torch.Tensor, flow_b: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Per-pixel EPE map (N,H',W') at ``scale``: both flows area-averaged to that size, times scale."""
    if scale != 1.0:
        size = (max(1, round(flow_a.shape[-2] * scale)), max(1, round(flow_a.shape[-1] * scale)))
        flow_a = F.adaptive_avg_pool2d(flow_a, size) * scale
        flow_b = F.adaptive_avg_pool2d(flow_b, size) * scale
    return flow_magnitude(flow_a - flow_b)


def landmark_weights(landmarks: np.ndarray, height: int, width: int, sigma: float, strength: float) -> torch.Tensor:
    """Weight map (H,W): 1 + strength * max_k exp(-|x - l_k|^2 / (2 s^2)), s = sigma * inter-ocular."""
    from metrics.landmarks import interocular

    radius = max(sigma * interocular(landmarks), 1.0)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    points = torch.as_tensor(landmarks, dtype=torch.float32)
    nearest = torch.full((height, width), float("inf"))
    for x, y in points:
        nearest = torch.minimum(nearest, (xs - x) ** 2 + (ys - y) ** 2)
    return 1.0 + strength * torch.exp(-nearest / (2 * radius**2))
