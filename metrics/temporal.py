"""Temporal-consistency metrics over adjacent frame pairs, streamed batch by batch.

Convention: a pair metric's value for the pair (t-1, t) is written on frame t; the first frame of
the video gets NaN. Each evaluator keeps only the last frame of the previous batch (and
``motion_inheritance`` the first frame), so memory does not grow with the video. The method's
flows of a batch are computed once for every metric that needs them (shared on the batch), from
one greyscale conversion per frame; the ground truth's flows, occlusion masks and LPIPS
distances go through the batch's truth store (:mod:`metrics.truth`), computed once for every
method evaluated against that ground truth. Flows come from
:mod:`metrics.flow`; the backend is the option ``flow`` ("dis", "farneback", "raft", "raft_small";
the default is "farneback" for ``tof``, whose definition, TecoGAN's, names that flow, and "dis"
for the others), with ``flow_weights`` (a RAFT checkpoint path) and ``flow_updates`` (RAFT
iterations). Masks are not used: these metrics compare whole frames.

- ``flow_gap``: mean flow magnitude between adjacent frames, of the method (``flow_mag_pred``) and
  of the ground truth (``flow_mag_gt``), the curves of ConsistentAvatar's Fig. 7; ``flow_gap`` is
  their absolute difference per frame, so its mean is the mean absolute difference of the curves.
- ``tof``: TecoGAN's tOF (``metrics.py``), mean over pixels of ||flow_gt - flow_pred||_2 per pair,
  the flows by OpenCV's Farneback with TecoGAN's parameters (the default; with ``flow="dis"`` its
  means differed from TecoGAN's by 20-89% on real pairs, so another flow is an option, recorded), over TecoGAN's crop of both flows (``crop_8x8``: the centred largest multiple of 32 that leaves
  at least 8 px on each side; option ``crop="tecogan"``, the default); ``crop="none"`` averages
  over the whole frame (the harness's earlier variant: 8-22% lower on talking heads, whose
  borders barely move).
- ``tlp``: TecoGAN's tLP, 100 * |LPIPS(gt_t-1, gt_t) - LPIPS(pred_t-1, pred_t)| (LPIPS alex v0.1).
- ``warp_error``: Lai et al. 2018 (``evaluate_WarpError.py`` with the occlusion of
  ``compute_flow_occlusion.py``): flow t->t+1 and t+1->t of the ground truth, occlusion by the
  forward-backward check and motion boundaries (Ruder et al. thresholds), the method's frame t+1
  warped onto t (bilinear in pixel coordinates, indices clamped at the border, as FlowNet2's
  ``Resample2d``), mean squared error (images in [0,1]) over non-occluded pixels and channels;
  ``warp_error_gt`` is the same for the ground truth itself (the floor set by the flow's accuracy).
  Option ``variant``: ``"lai"`` (default) is the original: motion boundaries from forward
  differences of the forward flow (0 in the last row and column), and a pair with no visible
  pixel scores 0; ``"central"`` is the harness's earlier variant: central differences
  (``torch.gradient``), and a pair with no visible pixel scores the MSE over all pixels (about
  1% of occlusion-mask pixels differ; single pairs up to ~4% apart on a real video).
- ``motion_inheritance``: flows from the first frame to every later frame, of the method and of
  the ground truth; end-point error at scales 1, 1/2 and 1/4 (the flow fields area-averaged and
  expressed in pixels of that scale), and a landmark-weighted EPE that weights pixels near the 68
  landmarks of the ground truth's first frame. The headline is the mean of the three scales.

This module holds the streaming evaluators and their registry entries; their functional kernels (tOF,
resampling, occlusion, warping error, end-point error) are in :mod:`metrics.temporal_kernels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from metrics.errors import InputError
from metrics.flow import (
    OPENCV_BACKENDS,
    FlowConfig,
    FlowInputs,
    flow_inputs,
    flow_magnitude,
    flow_unavailable,
    flow_weights,
    flows_between,
    gray_uint8,
    join_inputs,
)
from metrics.image import lpips, lpips_trunk_path, lpips_unavailable, lpips_weights
from metrics.registry import Batch, Evaluator, MetricSpec, keyword_defaults, register
from metrics.temporal_kernels import (
    TOF_CROPS,
    WARP_VARIANTS,
    end_point_error,
    landmark_weights,
    masked_warp_error,
    occlusion_mask,
    tof,
)
from metrics.truth import weight_stamp

# the ground truth's flows' version, part of their truth keys (metrics.truth): bumped, with the
# version of every metric reading flows, whenever a change alters the flows computed from the same frames
FLOW_VERSION = 1


def flow_config(flow: str = "dis", flow_weights: str | None = None, flow_updates: int = 12) -> FlowConfig:
    """The flow options of a flow metric (backend, RAFT weights, RAFT updates); their only defaults."""
    return FlowConfig(flow, flow_weights, int(flow_updates))


FLOW_DEFAULTS = keyword_defaults(flow_config)


# versions (MetricSpec.version) of the metrics that store ground-truth values, also part of those values' keys
WARP_ERROR_VERSION = 2
TLP_VERSION = 1


# ---------------------------------------------------------------------------- ground-truth values


def flow_truth_options(config: FlowConfig, device: torch.device) -> dict[str, Any]:
    """What a ground-truth flow depends on besides its two frames (the key options of kind ``flow``)."""
    if config.backend in OPENCV_BACKENDS:
        import cv2

        return {"backend": config.backend, "opencv": cv2.__version__, "version": FLOW_VERSION}
    from metrics.flow import RAFT_BACKENDS
    from metrics.weights import find_weight

    weights = weight_stamp(find_weight(RAFT_BACKENDS[config.backend], config.weights))
    return {"backend": config.backend, "weights": weights, "updates": config.num_flow_updates,
            "device": device.type, "torch": torch.__version__, "version": FLOW_VERSION}


def truth_flows(batch: Batch, config: FlowConfig, device: torch.device, pairs: list[tuple[str, str]],
                sources: Callable[[list[int]], FlowInputs], targets: Callable[[list[int]], FlowInputs]) -> torch.Tensor:
    """Ground-truth flows (M,2,H,W) for ``pairs`` of frame keys (source, target), from the batch's
    truth store; ``sources(indices)`` / ``targets(indices)`` give the flow inputs of the pairs it
    must compute. Shared through the batch by every metric asking for the same pairs."""

    def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
        flows = flows_between(sources(indices), targets(indices), config, "cpu", batch.map)
        return [{"flow": flow} for flow in flows.numpy()]

    def stored() -> torch.Tensor:
        values = batch.truth.get("flow", flow_truth_options(config, device), pairs, compute)
        return torch.from_numpy(np.stack([v["flow"] for v in values])).to(device)

    return batch.share(("truth flows", config, tuple(pairs)), stored)


# ---------------------------------------------------------------------------- evaluators


@dataclass
class Previous:
    """The last frame of the batch before: its id, prepared frames (1,3,H,W), ground-truth content
    key and flow inputs, so that the pair straddling two batches is evaluated like any other."""

    frame_id: int
    pred: torch.Tensor
    gt: torch.Tensor
    gt_key: str
    pred_inputs: FlowInputs | None = None
    gt_inputs: FlowInputs | None = None


@dataclass
class Pairs:
    """The adjacent pairs (t-1, t) of one batch whose frame t is at ``batch`` index ``first`` and after.

    ``prev_pred`` / ``prev_gt`` (frames t-1) are made on first use, once for every pair metric.
    """

    batch: Batch
    previous: Previous | None

    @property
    def pred(self) -> torch.Tensor:
        return self.batch.pred[self.first:]

    @property
    def gt(self) -> torch.Tensor:
        return self.batch.gt[self.first:]

    @cached_property
    def prev_pred(self) -> torch.Tensor:
        return self._before("pred")

    @cached_property
    def prev_gt(self) -> torch.Tensor:
        return self._before("gt")

    def _before(self, role: str) -> torch.Tensor:
        frames = getattr(self.batch, role)[:-1]
        return frames if self.previous is None else torch.cat([getattr(self.previous, role), frames])

    @property
    def first(self) -> int:
        return 0 if self.previous is not None else 1

    @property
    def gt_key_pairs(self) -> list[tuple[str, str]]:
        """The content keys (frame t-1, frame t) of the ground truth's pairs."""
        keys = self.batch.gt_keys
        sources = ([self.previous.gt_key] if self.previous is not None else []) + keys[:-1]
        return list(zip(sources, keys[self.first:]))


def batch_flow_inputs(batch: Batch, role: str, config: FlowConfig) -> FlowInputs:
    """The flow inputs of every frame of ``batch.pred`` or ``batch.gt``: one conversion per frame
    (greyscale from the batch's uint8 frames, which the face metrics share)."""
    if config.backend in OPENCV_BACKENDS:
        return batch.share(("flow inputs", role, "gray"), lambda: gray_uint8(batch.uint8(role), batch.map))
    return getattr(batch, role)


class PairMetric(Evaluator):
    """Streams adjacent pairs (t-1, t): keeps the last frame of the previous batch only."""

    def __init__(self, device: torch.device, **flow: Any):
        self.device = device
        self.config = flow_config(**flow)
        self.previous: Previous | None = None

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        n = len(batch)
        out = {column: np.full(n, np.nan) for column in self.columns}
        previous = self.previous
        if previous is not None and previous.gt.shape[1:] != batch.gt.shape[1:]:
            raise InputError(f"frame {batch.frame_ids[0]}: size {tuple(batch.gt.shape[-2:])} differs from the previous frames'")
        first = 0 if previous is not None else 1
        if n > first:
            # every pair metric of the batch streams the same frames, so they share one Pairs
            pairs = batch.share(("pairs", None if previous is None else previous.frame_id), lambda: Pairs(batch, previous))
            with torch.no_grad():
                values = self.pair_values(pairs)
            for column, value in values.items():
                out[column][first:] = value.detach().double().cpu().numpy()
        self.previous = Previous(batch.frame_ids[-1], batch.pred[-1:], batch.gt[-1:], batch.gt_keys[-1],
                                 self._last_inputs(batch, "pred"), self._last_inputs(batch, "gt"))
        return out

    def _last_inputs(self, batch: Batch, role: str) -> FlowInputs | None:
        """The last frame's flow inputs, when this batch computed them (else they are made when needed)."""
        if self.config.backend not in OPENCV_BACKENDS:
            return getattr(batch, role)[-1:]
        inputs = batch.shared.get(("flow inputs", role, "gray"))
        return None if inputs is None else inputs[-1:]

    def _before(self, pairs: Pairs, role: str) -> FlowInputs:
        previous = pairs.previous
        stored = getattr(previous, f"{role}_inputs")
        if stored is None:
            stored = flow_inputs(getattr(previous, role), self.config)
        return stored

    def pred_flows(self, pairs: Pairs) -> torch.Tensor:
        """The method's flows t-1 -> t, shared through the batch with the other pair metrics."""
        batch = pairs.batch

        def compute() -> torch.Tensor:
            inputs = batch_flow_inputs(batch, "pred", self.config)
            sources = inputs[:-1] if pairs.previous is None else join_inputs(self._before(pairs, "pred"), inputs[:-1])
            return flows_between(sources, inputs[pairs.first:], self.config, self.device, batch.map)

        previous_id = None if pairs.previous is None else pairs.previous.frame_id
        return batch.share(("pred flows", self.config, previous_id), compute)

    def gt_inputs(self, pairs: Pairs) -> tuple[Callable[[list[int]], FlowInputs], Callable[[list[int]], FlowInputs]]:
        """Functions giving the flow inputs of the frames t-1 and t of the ground truth's pairs at
        some indices (converted only when a flow must be computed)."""
        batch = pairs.batch

        def sources(indices: list[int]) -> FlowInputs:
            inputs = batch_flow_inputs(batch, "gt", self.config)
            before = inputs[:-1] if pairs.previous is None else join_inputs(self._before(pairs, "gt"), inputs[:-1])
            return before[indices]

        def targets(indices: list[int]) -> FlowInputs:
            return batch_flow_inputs(batch, "gt", self.config)[pairs.first:][indices]

        return sources, targets

    def gt_flows(self, pairs: Pairs) -> torch.Tensor:
        """The ground truth's flows t-1 -> t, computed once for every method."""
        return truth_flows(pairs.batch, self.config, self.device, pairs.gt_key_pairs, *self.gt_inputs(pairs))

    def pair_values(self, pairs: Pairs) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class FlowGap(PairMetric):
    columns = ("flow_gap", "flow_mag_pred", "flow_mag_gt")

    def pair_values(self, pairs):
        mag_pred = flow_magnitude(self.pred_flows(pairs)).flatten(1).mean(1)
        mag_gt = flow_magnitude(self.gt_flows(pairs)).flatten(1).mean(1)
        return {"flow_gap": (mag_pred - mag_gt).abs(), "flow_mag_pred": mag_pred, "flow_mag_gt": mag_gt}


class TOF(PairMetric):
    """TecoGAN's tOF, by default with TecoGAN's own flow (OpenCV Farneback with its parameters): the
    definition the name promises. ``flow="dis"`` / ``"raft"`` are options, recorded with the results."""

    columns = ("tof",)

    def __init__(self, device: torch.device, *, crop: str = "tecogan", flow: str = "farneback", **flow_options: Any):
        super().__init__(device, flow=flow, **flow_options)
        self.crop = crop

    def pair_values(self, pairs):
        return {"tof": tof(self.gt_flows(pairs), self.pred_flows(pairs), self.crop)}


class TLP(PairMetric):
    columns = ("tlp",)

    def __init__(self, device: torch.device, *, net: str = "alex", backbone_weights: str | None = None):
        super().__init__(device)
        self.net, self.backbone_weights = net, backbone_weights

    def pair_values(self, pairs):
        net, weights = self.net, self.backbone_weights
        options = {"net": net, "weights": weight_stamp(lpips_trunk_path(net, weights)), "device": self.device.type,
                   "torch": torch.__version__, "version": TLP_VERSION}

        def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
            distances = lpips(pairs.prev_gt[indices], pairs.gt[indices], net=net, backbone_weights=weights)
            return [{"lpips": np.asarray(d, dtype=np.float64)} for d in distances.double().cpu().numpy()]

        stored = pairs.batch.truth.get("lpips_pair", options, pairs.gt_key_pairs, compute)
        dist_gt = torch.tensor([float(v["lpips"]) for v in stored], dtype=torch.float64)
        dist_pred = lpips(pairs.prev_pred, pairs.pred, net=net, backbone_weights=weights).double().cpu()
        return {"tlp": 100.0 * (dist_gt - dist_pred).abs()}


class WarpError(PairMetric):
    columns = ("warp_error", "warp_error_gt")

    def __init__(self, device: torch.device, *, variant: str = "lai", **flow: Any):
        super().__init__(device, **flow)
        self.variant = variant

    def pair_values(self, pairs):
        forward = self.gt_flows(pairs)
        variant = self.variant
        # the occlusion mask and warp_error_gt depend on the ground truth's flows, the variant and
        # the kernels' version (the metric's)
        options = {**flow_truth_options(self.config, self.device), "variant": variant, "version": WARP_ERROR_VERSION,
                   "torch": torch.__version__}

        def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
            sources, targets = self.gt_inputs(pairs)
            backward = flows_between(targets(indices), sources(indices), self.config, forward.device, pairs.batch.map)
            visible = ~occlusion_mask(forward[indices], backward, variant, pairs.batch.map)
            prev_gt, gt = pairs.prev_gt[indices].float().contiguous(), pairs.gt[indices].float().contiguous()
            error = masked_warp_error(prev_gt, gt, forward[indices], visible, variant, pairs.batch.map)
            return [{"visible": np.packbits(v.cpu().numpy()), "warp_error_gt": np.float64(e)}
                    for v, e in zip(visible, error.double().cpu().numpy())]

        stored = pairs.batch.truth.get("occlusion", options, pairs.gt_key_pairs, compute)
        shape = (1, *forward.shape[-2:])
        visible = torch.stack([torch.from_numpy(np.unpackbits(v["visible"], count=int(np.prod(shape))).reshape(shape))
                               for v in stored]).to(device=forward.device, dtype=torch.bool)
        # contiguous frames: the kernel's per-frame sums then read memory in order (the same sums)
        prev_pred, pred = pairs.prev_pred.float().contiguous(), pairs.pred.float().contiguous()
        return {"warp_error": masked_warp_error(prev_pred, pred, forward, visible, variant, pairs.batch.map),
                "warp_error_gt": torch.tensor([float(v["warp_error_gt"]) for v in stored], dtype=torch.float64)}


MI_SCALES = (1, 2, 4)


@dataclass
class FirstFrame:
    """The first frame of the video: prepared frames (1,3,H,W), ground-truth key and flow inputs."""

    pred: torch.Tensor
    gt: torch.Tensor
    gt_key: str
    pred_inputs: FlowInputs
    gt_inputs: FlowInputs | None


class MotionInheritance(Evaluator):
    """EPE between the method's and the ground truth's flows from the first frame to frame t."""

    columns = ("motion_inheritance", *(f"mi_epe_{s}" for s in MI_SCALES), "mi_epe_lmk")

    def __init__(self, device: torch.device, *, lmk_sigma: float = 0.1, lmk_strength: float = 4.0, **flow: Any):
        self.device = device
        self.lmk_sigma, self.lmk_strength = float(lmk_sigma), float(lmk_strength)
        self.config = flow_config(**flow)
        self.first: FirstFrame | None = None
        self.weights: torch.Tensor | None = None
        self.faceless_first_frame = False

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        n = len(batch)
        out = {column: np.full(n, np.nan) for column in self.columns}
        start = 0
        if self.first is None:
            pred_inputs = batch_flow_inputs(batch, "pred", self.config)[:1]
            self.first = FirstFrame(batch.pred[:1].clone(), batch.gt[:1].clone(), batch.gt_keys[0],
                                    pred_inputs, None)
            self.weights = self._landmark_weights(batch)
            start = 1
        elif self.first.gt.shape[1:] != batch.gt.shape[1:]:
            raise InputError(f"frame {batch.frame_ids[0]}: size {tuple(batch.gt.shape[-2:])} differs from the first frame's")
        if n <= start:
            return out
        first = self.first
        pred_inputs = batch_flow_inputs(batch, "pred", self.config)[start:]
        pairs = [(first.gt_key, key) for key in batch.gt_keys[start:]]

        def sources(indices: list[int]) -> FlowInputs:
            if first.gt_inputs is None:
                first.gt_inputs = flow_inputs(first.gt, self.config)
            return _repeat(first.gt_inputs, len(indices))

        def targets(indices: list[int]) -> FlowInputs:
            return batch_flow_inputs(batch, "gt", self.config)[start:][indices]

        with torch.no_grad():
            flow_pred = flows_between(_repeat(first.pred_inputs, len(pred_inputs)), pred_inputs, self.config,
                                      self.device, batch.map)
            flow_gt = truth_flows(batch, self.config, self.device, pairs, sources, targets)
            full_scale = end_point_error(flow_pred, flow_gt)
            per_scale = []
            for s in MI_SCALES:
                epe = full_scale if s == 1 else end_point_error(flow_pred, flow_gt, 1.0 / s)
                out[f"mi_epe_{s}"][start:] = epe.flatten(1).mean(1).double().cpu().numpy()
                per_scale.append(out[f"mi_epe_{s}"][start:])
            out["motion_inheritance"][start:] = np.mean(per_scale, axis=0)
            if self.weights is not None:
                weights = self.weights.to(flow_pred.device)
                out["mi_epe_lmk"][start:] = ((full_scale * weights).flatten(1).sum(1) / weights.sum()).double().cpu().numpy()
        return out

    def _landmark_weights(self, batch: Batch) -> torch.Tensor | None:
        landmarks = batch.annotations.get("landmarks")
        if landmarks is not None:
            landmarks = np.asarray(landmarks[0], dtype=np.float64)
        else:
            from metrics.face import gt_faces
            from metrics.landmarks import dlib_unavailable

            if dlib_unavailable() is not None:
                return None
            face = gt_faces(batch)[0]
            landmarks = None if face is None else face.landmarks
        if landmarks is None:
            self.faceless_first_frame = True
            return None
        height, width = batch.gt.shape[-2:]
        return landmark_weights(landmarks, height, width, self.lmk_sigma, self.lmk_strength)


def _repeat(inputs: FlowInputs, count: int) -> FlowInputs:
    """One frame's flow inputs repeated ``count`` times (for the flows from the first frame)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.expand(count, *inputs.shape[1:])
    return np.repeat(inputs, count, axis=0)


# ---------------------------------------------------------------------------- registry


def _factory(cls, choices: dict[str, tuple[str, ...]] | None = None):
    def factory(device: torch.device, protocol: Any = None, **options: Any) -> Evaluator:
        for option, allowed in (choices or {}).items():
            if option in options and options[option] not in allowed:
                raise InputError(f"{cls.columns[0]}: {option} must be one of {', '.join(allowed)}, got {options[option]!r}")
        return cls(device, **options)  # the flow options are checked as the evaluator is built

    return factory


_FLOW_NEED = ("flow: OpenCV by default (Farneback for tof, DIS for the others); raft needs raft_large weights",)

_NON_NEGATIVE = (0.0, math.inf)
# name, evaluator, unit, description, reference columns, trace, allowed values of its options (its
# constructor's default among them), version
_FLOW_METRICS = (
    ("flow_gap", FlowGap, "px", "|mean flow magnitude of the method - of the ground truth| between adjacent frames",
     ("flow_mag_pred", "flow_mag_gt"), False, {}, 1),
    ("tof", TOF, "px", "TecoGAN tOF: mean ||flow_gt - flow_pred||_2 between adjacent frames (Farneback flow with "
     "TecoGAN's parameters), TecoGAN's border crop", (), True, {"crop": TOF_CROPS}, 3),
    ("warp_error", WarpError, "", "Lai et al. 2018 warping error: ground-truth flow and occlusion, masked MSE in [0,1]",
     ("warp_error_gt",), True, {"variant": WARP_VARIANTS}, WARP_ERROR_VERSION),
)
for _name, _cls, _unit, _description, _reference, _trace, _choices, _version in _FLOW_METRICS:
    register(MetricSpec(_name, higher_is_better=False, unit=_unit, description=_description,
                        factory=_factory(_cls, _choices), columns=_cls.columns, needs=_FLOW_NEED,
                        defaults=keyword_defaults(_cls, flow_config),
                        check=flow_unavailable, weights=flow_weights, kind="temporal", reference_columns=_reference, trace=_trace,
                        value_range=_NON_NEGATIVE, version=_version))
register(MetricSpec("tlp", higher_is_better=False, unit="",
                    description="TecoGAN tLP: 100 |LPIPS(gt_t-1, gt_t) - LPIPS(pred_t-1, pred_t)|",
                    factory=_factory(TLP), columns=TLP.columns,
                    needs=("package:lpips", "weights:alexnet-owt-7be5be79.pth"),
                    defaults=keyword_defaults(TLP), check=lpips_unavailable, weights=lpips_weights, kind="temporal",
                    value_range=_NON_NEGATIVE, version=TLP_VERSION))
register(MetricSpec("motion_inheritance", higher_is_better=False, unit="px",
                    description="EPE of flows first frame -> frame t, method vs ground truth, mean over scales 1, 1/2, 1/4",
                    factory=_factory(MotionInheritance), columns=MotionInheritance.columns,
                    needs=(*_FLOW_NEED, "dlib 68 landmarks for mi_epe_lmk"),
                    defaults=keyword_defaults(MotionInheritance, flow_config),
                    check=flow_unavailable, weights=lambda o: {**flow_weights(o), "dlib-landmarks68": None},
                    kind="temporal", value_range=_NON_NEGATIVE))
