"""FVD (Fréchet video distance; Unterthiner et al. 2018) as VideoGPT/TATS and StyleGAN-V compute it: a set value.

The registry entry ``fvd`` (``kind="set"``) builds a :class:`FVDMetric` for protocol ``videogpt`` or
``stylegan-v`` (:mod:`metrics.fvd_inputs` pins each implementation's weight file, resize and value
range; :mod:`metrics.i3d` is the network). Its unit is a *clip* of 16 frames, not a frame:

- Clips: each sequence's evaluated frames, in order, cut into consecutive non-overlapping clips of
  16 frames (stride 16, from the first frame); the frames after the last whole clip are left out
  (counted in ``details``). A sequence of fewer than 16 frames has no clip and gets a reason, not a
  value. (The implementations sample differently: VideoGPT takes the first 16 frames of each dataset
  clip, StyleGAN-V one clip per video at a random offset for real videos; a benchmark of a few long
  sequences takes every clip instead, and records how.)
- Features: the I3D's 400 logits before the softmax, one vector per clip, float32.
- Value: the Fréchet distance between the two sets of clip features, computed exactly in float64
  (:func:`metrics.fid.frechet_distance_features`); its covariances divide by n - 1 under
  ``videogpt`` (its ``cov``) and by n under ``stylegan-v`` (its ``FeatureStats``). VideoGPT takes the
  square roots with torch SVDs of float32 matrices, StyleGAN-V with ``scipy.linalg.sqrtm``; both
  are the same quantity (``tests/test_fvd.py`` compares them with each implementation's own
  function). ``frames`` and ``gt_frames`` of a FVD row count *clips*.
- Uncertainty: the moving-block bootstrap of :mod:`metrics.setlevel` over clips (blocks of about
  n^(1/3) consecutive clips), ``resamples`` times; the resample count is recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from metrics import fid as kernels
from metrics.errors import CabenchError, WeightsMissingError
from metrics.fvd_inputs import FVD_INPUTS
from metrics.i3d import FEATURE_DIM, load_i3d
from metrics.registry import MetricSpec, register
from metrics.setlevel import DEFAULT_RESAMPLES, SetMetric, SetValue
from metrics.truth import weight_stamp
from metrics.weights import usable_weight

MIN_CLIPS = 2


class FVDMetric(SetMetric):
    """Features per clip and the FVD of a generated set of clips against the ground truth's (see the module docstring)."""

    feature_dim = FEATURE_DIM

    def __init__(self, protocol: Any, device: torch.device, weights: str | None, resamples: int, seed: int):
        self.name = "fvd"
        self.protocol_id = getattr(protocol, "id", protocol or "videogpt")
        reason = fvd_protocol_reason(self.protocol_id)
        if reason is not None:
            raise CabenchError(reason)
        self.input = FVD_INPUTS[self.protocol_id]
        self.clip_length = self.input.clip_length
        self.device = device
        self.weight_path = usable_weight(self.input.weights, weights_for(self.protocol_id, weights))
        self.resamples, self.seed = resamples, seed
        self.subsets, self.subset_size = 0, None
        self.columns = ()

    @property
    def feature_key(self) -> dict[str, Any]:
        """What a clip's features depend on (the truth store's options): protocol, weight file, torch, device type."""
        return {"features": f"fvd/{self.protocol_id}", "weights": weight_stamp(self.weight_path), "device": self.device.type,
                "torch": torch.__version__.split("+")[0]}

    def features(self, clips: torch.Tensor) -> np.ndarray:
        """Float (N,16,3,H,W) clips in [0,1] prepared by the protocol -> (N,400) float32 logits."""
        model = load_i3d(self.weight_path, self.device, self.input.format)
        with torch.inference_mode():
            return model(self.input.prepare(clips.to(self.device))).float().cpu().numpy()

    @property
    def streams(self) -> bool:
        return False

    def value(self, generated: np.ndarray, real: np.ndarray) -> SetValue:
        """FVD of ``generated`` clip features against ``real`` ones (each (n, 400)); counts are clips."""
        generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
        if len(generated) < MIN_CLIPS or len(real) < MIN_CLIPS:
            raise CabenchError(f"fvd needs at least {MIN_CLIPS} clips of {self.clip_length} frames in each set, got "
                               f"{len(generated)} and {len(real)}")
        ddof = self.input.ddof

        def statistic(x: np.ndarray, y: np.ndarray) -> float:
            return kernels.frechet_distance_features(x, y, ddof=ddof)

        point = statistic(generated, real)
        details: dict[str, Any] = {"unit": "clip", "clip_length": self.clip_length, "covariance": f"n - {ddof}",
                                   "sqrt": "exact (nuclear norm); reference: " + self.input.sqrt}
        low, high = kernels.block_bootstrap_interval(statistic, generated, real, self.resamples, self.seed)
        if self.resamples:
            details["block"] = kernels.default_block(len(generated))
        return SetValue(float(point), low, high, self.resamples, len(generated), len(real), details)


def clip_starts(count: int, length: int) -> list[int]:
    """First frames of the consecutive non-overlapping clips of ``length`` frames in ``count`` frames."""
    return list(range(0, count - length + 1, length))


def weights_for(protocol_id: str, option: str | None) -> str | None:
    """The explicit weight file of ``protocol_id`` in ``--fvd-weights``: ``PATH`` (every FVD protocol of the
    run), or ``PROTOCOL=PATH`` items, comma-separated (``videogpt=a.pt,stylegan-v=b.pt``); None: search."""
    if not option:
        return None
    items = [item.strip() for item in str(option).split(",") if item.strip()]
    named = dict(item.split("=", 1) for item in items if item.split("=", 1)[0] in FVD_INPUTS and "=" in item)
    if named:
        return named.get(protocol_id)
    return str(option)


def fvd_protocol_reason(protocol_id: str) -> str | None:
    """Why FVD is not defined under ``protocol_id``, or None."""
    if protocol_id in FVD_INPUTS:
        return None
    return f"fvd is not part of protocol {protocol_id!r}; use --protocol {' or '.join(FVD_INPUTS)}"


def fvd_reason(protocol_id: str, options: dict[str, Any]) -> str | None:
    """Why FVD cannot run under ``protocol_id``: not defined there, or its weight file missing or unusable
    (with the command that fetches it); None when it can."""
    reason = fvd_protocol_reason(protocol_id)
    if reason is None:
        key = FVD_INPUTS[protocol_id].weights
        try:
            usable_weight(key, weights_for(protocol_id, options.get("fvd_weights")))
        except WeightsMissingError as error:
            from metrics.manifest import manifest_entry

            hint = f"cabench weights --download {key}"
            # the hint is in the message already, or no download is allowed (VideoGPT's file: its steps are there)
            if hint in str(error) or not manifest_entry(key).downloadable:
                return str(error)
            return f"{error}; fetch it with: {hint}"
    return reason


def fvd_unavailable(options: dict[str, Any]) -> str | None:
    """Why FVD can run under no protocol (neither implementation's file usable); each protocol's file is
    checked again per protocol (:func:`fvd_reason`)."""
    reasons = [fvd_reason(protocol_id, options) for protocol_id in FVD_INPUTS]
    return None if any(reason is None for reason in reasons) else reasons[0]


def _factory(device: torch.device, protocol: Any = None, fvd_weights: str | None = None,
             resamples: int = DEFAULT_RESAMPLES, seed: int = kernels.KID_SEED) -> FVDMetric:
    return FVDMetric(protocol, device, fvd_weights, resamples, seed)


register(MetricSpec("fvd", higher_is_better=False, unit="",
                    description="Fréchet video distance of the generated 16-frame clips to the ground truth's "
                                "(I3D logits; a set value over clips)",
                    factory=_factory, kind="set", needs=("weights:i3d_pretrained_400.pt",),
                    defaults={"fvd_weights": None, "resamples": DEFAULT_RESAMPLES}, check=fvd_unavailable,
                    protocol_check=fvd_reason,
                    paper_format=".1f", value_range=(0.0, np.inf)))
