"""Optical flow between batches of frames: one interface, three backends (DIS, Farneback, RAFT).

Convention: ``estimate_flow(src, dst)`` returns, for frames (N,3,H,W) in [0,1], the flow
(N,2,H,W) in pixels from ``src`` to ``dst`` (channel 0 = x, channel 1 = y), so that
``src[y, x] ~ dst[y + flow_y, x + flow_x]``: the convention of OpenCV's ``calc`` and of RAFT.
The flow comes back on the device of ``src`` as float32, for any frame size.

- ``dis`` (default, offline): OpenCV's Dense Inverse Search, preset MEDIUM, on greyscale uint8.
- ``farneback``: OpenCV's Farneback with the parameters of TecoGAN's tOF
  (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2).
- ``raft`` / ``raft_small``: torchvision's RAFT (large / small). Weights come from an explicit
  path, ``$CABENCH_WEIGHTS`` or the torch hub cache; torchvision checkpoints and the original
  princeton-vl checkpoints (``raft-things.pth``, ``raft-sintel.pth``: ``module.``-prefixed keys)
  are both accepted, the latter converted to torchvision's layout. Frames are padded to a
  multiple of 8, and to at least 128 (torchvision's minimum), by edge replication (as RAFT's
  ``InputPadder``, split evenly on both sides) and the flow is cropped back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from metrics.errors import InputError, WeightsMissingError
from metrics.weights import checked_state, from_manifest, usable_weight

RAFT_LARGE = from_manifest("raft-large", check=lambda path: raft_state(path, "raft_large"))
RAFT_SMALL = from_manifest("raft-small", check=lambda path: raft_state(path, "raft_small"))

OPENCV_BACKENDS = ("dis", "farneback")
RAFT_BACKENDS = {"raft": RAFT_LARGE.key, "raft_small": RAFT_SMALL.key}  # backend -> manifest name
RAFT_VARIANTS = {"raft": "raft_large", "raft_small": "raft_small"}  # backend -> torchvision builder
BACKENDS = (*OPENCV_BACKENDS, *RAFT_BACKENDS)


@dataclass(frozen=True)
class FlowConfig:
    """Which flow to compute: the backend, and for RAFT its weights and number of updates."""

    backend: str = "dis"
    weights: str | None = None
    num_flow_updates: int = 12

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise InputError(f"flow: unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.num_flow_updates < 1:
            raise InputError(f"flow_updates must be at least 1, got {self.num_flow_updates}")


def flow_unavailable(options: dict) -> str | None:
    """Why the flow backend named in ``options`` cannot run (None when it can).

    An unknown backend name is bad input, not a missing resource: it raises :class:`InputError`.
    """
    backend = FlowConfig(options.get("flow", "dis")).backend
    if backend in RAFT_BACKENDS:
        try:
            usable_weight(RAFT_BACKENDS[backend], options.get("flow_weights"))
        except WeightsMissingError as error:
            return str(error)
    return None


def flow_weights(options: dict) -> dict[str, str | None]:
    """The weight file of the flow backend in ``options``: {manifest name: explicit path or None} ({} for OpenCV)."""
    backend = options.get("flow", "dis")
    return {RAFT_BACKENDS[backend]: options.get("flow_weights")} if backend in RAFT_BACKENDS else {}


Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], list[Any]] | None
FlowInputs = np.ndarray | torch.Tensor


def estimate_flow(src: torch.Tensor, dst: torch.Tensor, config: FlowConfig | str = "dis", map_: Mapper = None) -> torch.Tensor:
    """Flow (N,2,H,W) in pixels from frames ``src`` to ``dst`` (both (N,3,H,W) in [0,1]).

    ``map_`` runs the OpenCV backends' per-pair work (e.g. on a thread pool: OpenCV releases the GIL).
    """
    if isinstance(config, str):
        config = FlowConfig(config)
    if src.ndim != 4 or src.shape != dst.shape or src.shape[1] != 3:
        raise InputError(f"flow needs two (N,3,H,W) batches of the same shape, got {tuple(src.shape)} and {tuple(dst.shape)}")
    return flows_between(flow_inputs(src, config, map_), flow_inputs(dst, config, map_), config, src.device, map_)


def flow_inputs(frames: torch.Tensor, config: FlowConfig, map_: Mapper = None) -> FlowInputs:
    """What the backend reads of each frame: greyscale uint8 (N,H,W) for OpenCV, the frames for RAFT.

    Computing them once per frame lets every flow a frame takes part in share one conversion.
    """
    return to_gray_uint8(frames, map_) if config.backend in OPENCV_BACKENDS else frames


def flows_between(src: FlowInputs, dst: FlowInputs, config: FlowConfig, device: torch.device | str,
                  map_: Mapper = None) -> torch.Tensor:
    """Flows (N,2,H,W) float32 on ``device`` between the :func:`flow_inputs` of two batches."""
    if len(src) != len(dst) or tuple(src.shape[1:]) != tuple(dst.shape[1:]):
        raise InputError(f"flow needs two batches of the same shape, got {tuple(src.shape)} and {tuple(dst.shape)}")
    if len(src) == 0:
        return torch.zeros((0, 2, *src.shape[-2:]), dtype=torch.float32, device=device)
    if config.backend in OPENCV_BACKENDS:
        return opencv_gray_flow(src, dst, config.backend, map_).to(device)
    model = raft_model(config.backend, config.weights, str(src.device))
    return raft_flow(model, src, dst, config.num_flow_updates).to(device)


def join_inputs(first: FlowInputs, second: FlowInputs) -> FlowInputs:
    """The :func:`flow_inputs` of two batches, one after the other."""
    return torch.cat([first, second]) if isinstance(first, torch.Tensor) else np.concatenate([first, second])


# ---------------------------------------------------------------------------- OpenCV


def to_gray_uint8(frames: torch.Tensor, map_: Mapper = None) -> np.ndarray:
    """(N,3,H,W) in [0,1] -> (N,H,W) uint8 luma (ITU-R BT.601 weights, as cv2.COLOR_RGB2GRAY)."""
    rgb = (frames.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return gray_uint8(rgb, map_)


def gray_uint8(rgb: np.ndarray, map_: Mapper = None) -> np.ndarray:
    """(N,H,W,3) uint8 RGB -> (N,H,W) uint8 luma, as cv2.COLOR_RGB2GRAY."""
    import cv2

    def gray(image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)

    if len(rgb) == 0:
        return np.zeros((0, *rgb.shape[1:3]), dtype=np.uint8)
    return np.stack((map_ or serial_map)(gray, rgb))


def opencv_flow(src: torch.Tensor, dst: torch.Tensor, method: str = "dis", map_: Mapper = None) -> torch.Tensor:
    """Dense flow by OpenCV (``dis`` or ``farneback``) for each pair of the batch."""
    return opencv_gray_flow(to_gray_uint8(src, map_), to_gray_uint8(dst, map_), method, map_).to(src.device)


def opencv_gray_flow(src: np.ndarray, dst: np.ndarray, method: str = "dis", map_: Mapper = None) -> torch.Tensor:
    """OpenCV flow (N,2,H,W) float32 (CPU) between greyscale uint8 frames (N,H,W), pair by pair."""
    import cv2

    if method not in OPENCV_BACKENDS:
        raise InputError(f"flow: unknown OpenCV method {method!r}")

    def one(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        first, second = pair
        if method == "dis":
            return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(first, second, None)
        return cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    flows = (map_ or serial_map)(one, list(zip(src, dst)))
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()


def serial_map(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """The :data:`Mapper` that runs in the calling thread."""
    return [function(item) for item in items]


# ---------------------------------------------------------------------------- RAFT


def build_raft(variant: str = "raft_large") -> torch.nn.Module:
    """torchvision's RAFT architecture with random weights (``raft_large`` or ``raft_small``)."""
    from torchvision.models.optical_flow import raft_large, raft_small

    builders = {"raft_large": raft_large, "raft_small": raft_small}
    return builders[variant](weights=None, progress=False)


def raft_model(backend: str, weights: str | Path | None, device: str) -> torch.nn.Module:
    """The RAFT model of ``backend`` with weights found and checked by :func:`usable_weight` (cached per file)."""
    path = usable_weight(RAFT_BACKENDS[backend], weights)
    stat = path.stat()
    return _cached_raft(RAFT_VARIANTS[backend], str(path), device, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _cached_raft(variant: str, path: str, device: str, mtime_ns: int, size: int) -> torch.nn.Module:
    model = load_raft(path, variant)
    return model.to(device)


def raft_state(path: str | Path, variant: str = "raft_large") -> dict[str, torch.Tensor]:
    """A torchvision or original (princeton-vl) RAFT checkpoint as a torchvision ``variant`` state dict,
    checked by name and shape against the model (``state_dict`` wrappers and ``module.`` prefixes
    are unwrapped; original module names are converted).

    Raises:
        WeightsUnusableError: the file is corrupt or truncated, or its keys or shapes do not fit.
    """
    return checked_state(path, lambda: build_raft(variant), f"torchvision {variant}", convert=_torchvision_layout)


def _torchvision_layout(checkpoint):
    """Unwrap a ``state_dict`` entry and convert original RAFT names (anything else passes through)."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if isinstance(checkpoint, dict) and any(str(key).startswith(("module.", "fnet.", "cnet.", "update_block."))
                                            for key in checkpoint):
        checkpoint = convert_original_raft(checkpoint)
    return checkpoint


def load_raft(path: str | Path, variant: str = "raft_large") -> torch.nn.Module:
    """Build torchvision RAFT and load a torchvision or original (princeton-vl) checkpoint strictly."""
    state = raft_state(path, variant)
    model = build_raft(variant)
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


# Original RAFT (princeton-vl/RAFT core/*.py) module names -> torchvision's, applied in order.
_ORIGINAL_TO_TORCHVISION = (
    (r"^fnet\.", "feature_encoder."),
    (r"^cnet\.", "context_encoder."),
    (r"^(feature_encoder|context_encoder)\.conv1\.", r"\1.convnormrelu.0."),
    (r"^(feature_encoder|context_encoder)\.norm1\.", r"\1.convnormrelu.1."),
    (r"^(feature_encoder|context_encoder)\.conv2\.", r"\1.conv."),
    (r"(layer\d\.\d)\.conv(\d)\.", r"\1.convnormrelu\2.0."),
    (r"(layer\d\.\d)\.norm(\d)\.", r"\1.convnormrelu\2.1."),
    (r"^update_block\.encoder\.convc(\d)\.", r"update_block.motion_encoder.convcorr\1.0."),
    (r"^update_block\.encoder\.convf(\d)\.", r"update_block.motion_encoder.convflow\1.0."),
    (r"^update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0."),
    (r"^update_block\.gru\.conv([zrq])(\d)\.", r"update_block.recurrent_block.convgru\2.conv\1."),
    (r"^update_block\.gru\.conv([zrq])\.", r"update_block.recurrent_block.convgru1.conv\1."),
    (r"^update_block\.flow_head\.", "update_block.flow_head."),
    (r"^update_block\.mask\.0\.", "mask_predictor.convrelu.0."),
    (r"^update_block\.mask\.2\.", "mask_predictor.conv."),
)


def convert_original_raft(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an original RAFT state dict (DataParallel ``module.`` prefix) to torchvision's layout.

    In the original residual blocks the last norm (``norm3`` of a basic block, ``norm4`` of a
    bottleneck) is the same module as ``downsample.1`` and appears twice in the state dict; that
    duplicate is dropped. Keys that no rule covers are kept as they are, so that loading reports them.
    """
    converted = {}
    blocks_with_conv3 = {m.group(1) for k in state if (m := re.search(r"^(?:module\.)?(.*layer\d\.\d)\.conv3\.", k))}
    for key, value in state.items():
        name = key.removeprefix("module.")
        block = re.match(r"^(.*layer\d\.\d)\.norm(\d)\.", name)
        if block:
            last_norm = 4 if block.group(1) in blocks_with_conv3 else 3
            if int(block.group(2)) == last_norm:
                continue  # duplicate of downsample.1
        for pattern, replacement in _ORIGINAL_TO_TORCHVISION:
            name = re.sub(pattern, replacement, name)
        converted[name] = value
    return converted


def pad_to_multiple(
    frames: torch.Tensor, multiple: int = 8, minimum: int = 0
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Replicate-pad (N,C,H,W) so that H and W are multiples of ``multiple`` and at least ``minimum``,
    split evenly on both sides (the extra pixel at the end); returns (padded, (left, right, top, bottom))."""
    height, width = frames.shape[-2:]
    pad_h = max(minimum - height, (-height) % multiple)
    pad_w = max(minimum - width, (-width) % multiple)
    pad_h += (-(height + pad_h)) % multiple
    pad_w += (-(width + pad_w)) % multiple
    pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    if pad_h == 0 and pad_w == 0:
        return frames, pads
    return F.pad(frames, pads, mode="replicate"), pads


def unpad(flow: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = pads
    height, width = flow.shape[-2:]
    return flow[..., top : height - bottom, left : width - right]


RAFT_MIN_SIZE = 128  # torchvision's correlation pyramid needs feature maps of at least 16 (input / 8)


def raft_flow(model: torch.nn.Module, src: torch.Tensor, dst: torch.Tensor, num_flow_updates: int = 12) -> torch.Tensor:
    """RAFT flow from ``src`` to ``dst`` ([0,1] frames mapped to [-1,1], torchvision's transform)."""
    device = next(model.parameters()).device
    first, pads = pad_to_multiple(src.float().to(device) * 2 - 1, 8, RAFT_MIN_SIZE)
    second, _ = pad_to_multiple(dst.float().to(device) * 2 - 1, 8, RAFT_MIN_SIZE)
    with torch.no_grad():
        flow = model(first, second, num_flow_updates=num_flow_updates)[-1]
    return unpad(flow, pads).to(src.device)


# ---------------------------------------------------------------------------- helpers on flows


def flow_magnitude(flow: torch.Tensor) -> torch.Tensor:
    """Per-pixel end-point length (N,H,W) of flow (N,2,H,W).

    Written out: ``torch.linalg.vector_norm(flow, dim=1)`` reduces across planes and is ~20x slower on CPU.
    """
    return torch.sqrt(flow[:, 0] ** 2 + flow[:, 1] ** 2)


def base_grid(height: int, width: int, device=None) -> torch.Tensor:
    """Pixel coordinates (1,2,H,W): channel 0 = x, channel 1 = y."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])[None]


def warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: out[y, x] = images[y + flow_y, x + flow_x] (bilinear, borders replicated).

    With ``flow`` from frame t to frame t+1, ``warp(frame_{t+1}, flow)`` brings frame t+1 onto t.
    """
    height, width = images.shape[-2:]
    coords = base_grid(height, width, images.device) + flow.to(images.dtype)
    grid = torch.stack([2 * coords[:, 0] / max(width - 1, 1) - 1, 2 * coords[:, 1] / max(height - 1, 1) - 1], dim=-1)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True)
