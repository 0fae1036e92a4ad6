"""Set-level metrics (FID, KID): a value per set of frames, from per-frame Inception features.

A set metric's registry entry has ``kind="set"``; its factory builds a :class:`SetMetric`, which
(1) turns a batch of frames prepared by the protocol into per-frame features
(:meth:`SetMetric.features`; what the protocol decides: resize filter, value range, network,
layer), and (2) turns the features of a generated set and of its ground truth into the value,
its uncertainty and the frame counts (:meth:`SetMetric.value`). The engine stores the features per
frame (keyed by the frame's content, so the ground truth's are computed once and shared by every
method, and a killed run resumes) and calls (2) per sequence and per method over a dataset.

Protocols (one per published implementation; the protocol id is recorded beside each value):

- ``pytorch-fid``, ``clean-fid`` (and its ``legacy_pytorch`` / ``legacy_tensorflow`` modes),
  ``torch-fidelity``: each implementation's weight file, resize, quantisation and value range
  (:mod:`metrics.fid_inputs`), the FID Inception's 2048-d pool_3 features in float32
  (:mod:`metrics.inception`), statistics in float64 (``np.mean``, ``np.cov``), the Fréchet
  distance. The implementations take Tr sqrt(S1 S2) with ``scipy.linalg.sqrtm`` of the 2048²
  product (pytorch-fid, clean-fid; :func:`metrics.fid.frechet_distance` does exactly that, and is
  tested against the others) or from the eigenvalues of the product (torch-fidelity); the values
  here use exact symmetric forms of the same quantity, equal to them within 1e-6 relative: from the
  features, the nuclear norm of the centred cross products when a set has fewer frames than
  dimensions (:func:`metrics.fid.frechet_distance_features`), and from running statistics two
  symmetric eigen-decompositions (:func:`metrics.fid.fid_from_statistics`); sqrtm of a 2048²
  matrix costs tens of seconds on a CPU. KID is torch-fidelity's estimator (clean-fid's is the
  same unbiased MMD²; pytorch-fid has none) on the protocol's features (:func:`metrics.fid.kid`),
  its subsets drawn from a seeded generator (recorded: clean-fid draws from numpy's unseeded one).

Uncertainty: a moving-block bootstrap over frames (blocks of about n^(1/3) consecutive frames,
each set resampled on its own, ``resamples`` times, seed fixed): the 2.5 and 97.5 percentiles
of the resampled values, with the resample count recorded. A resample repeats frames, which
lowers the effective N, so resampled FIDs sit above the point value (FID's small-N bias); the
interval describes the spread, not a bias-corrected value. KID's own subset standard deviation is
reported beside its bootstrap interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from metrics import fid as kernels
from metrics.errors import CabenchError, WeightsMissingError
from metrics.fid_inputs import INPUTS, resize_pytorch_fid
from metrics.inception import load_inception  # registers the Inception weight files
from metrics.registry import Evaluator, MetricSpec, register
from metrics.truth import weight_stamp
from metrics.weights import usable_weight

DEFAULT_RESAMPLES = 100
__all__ = ["SetMetric", "SetValue", "resize_pytorch_fid", "set_reason"]


@dataclass(frozen=True)
class SetValue:
    """One set value: ``value`` with its bootstrap interval [low, high] over ``resamples`` resamples
    (NaN when ``resamples`` is 0), the frames of the generated and the real set, and details
    (KID's subset count, size and standard deviation)."""

    value: float
    low: float
    high: float
    resamples: int
    frames: int
    gt_frames: int
    details: dict[str, Any]


class SetMetric(Evaluator):
    """Features per frame and the set value of FID or KID under one protocol (see the module docstring).

    ``feature_batch``: frames per network call, pytorch-fid's default batch (50). On a CPU the
    Inception's time per frame halves from batch 8 to 48 (measured: 42.9 s against 20.6 s for 48
    frames at 299 x 299, and the same for pytorch-fid's network), so the engine reads at least this
    many frames at a time for a set metric whatever the run's ``batch_size``."""

    feature_batch = 50

    def __init__(self, name: str, protocol: Any, device: torch.device, weights: str | None, resamples: int,
                 subsets: int, subset_size: int | None, seed: int):
        self.name = name
        self.protocol_id = getattr(protocol, "id", protocol or "pytorch-fid")
        reason = protocol_reason(name, self.protocol_id)
        if reason:
            raise CabenchError(reason)
        self.input = INPUTS[self.protocol_id]
        self.device = device
        self.weight_path = usable_weight(self.input.weights, weights)
        self.resamples, self.subsets, self.subset_size, self.seed = resamples, subsets, subset_size, seed
        self.columns = ()

    @property
    def feature_key(self) -> dict[str, Any]:
        """What the features depend on (the truth store's options): protocol, weight file, device type."""
        return {"features": self.protocol_id, "weights": weight_stamp(self.weight_path), "device": self.device.type,
                "torch": torch.__version__.split("+")[0]}

    def features(self, frames: torch.Tensor) -> np.ndarray:
        """Float (N,3,H,W) frames in [0,1], prepared by the protocol -> (N,2048) float32 features."""
        model = load_inception(self.weight_path, self.device, self.input.format)
        with torch.inference_mode():
            return model(self.input.prepare(frames.to(self.device))).float().cpu().numpy()

    @property
    def streams(self) -> bool:
        """Whether the value needs only running statistics (FID without bootstrap), not the features."""
        return self.name == "fid" and not self.resamples

    def value_from_statistics(self, generated: kernels.FeatureStatistics, real: kernels.FeatureStatistics) -> SetValue:
        """FID from running statistics (memory O(d²) whatever the number of frames), no interval."""
        if generated.count < 2 or real.count < 2:
            raise CabenchError(f"{self.name} needs at least 2 frames in each set, got {generated.count} and {real.count}")
        value = kernels.fid_from_statistics(generated, real, self.input.ddof)
        return SetValue(value, float("nan"), float("nan"), 0, generated.count, real.count, {"streamed": True})

    def value(self, generated: np.ndarray, real: np.ndarray) -> SetValue:
        """The set value of ``generated`` features against ``real`` features (each (n, 2048))."""
        generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
        if len(generated) < 2 or len(real) < 2:
            raise CabenchError(f"{self.name} needs at least 2 frames in each set, got {len(generated)} and {len(real)}")
        details: dict[str, Any] = {}
        if self.name == "fid":
            ddof = self.input.ddof

            def statistic(x: np.ndarray, y: np.ndarray) -> float:
                return kernels.frechet_distance_features(x, y, ddof=ddof)

            point = statistic(generated, real)
        else:
            result = kernels.kid(generated, real, self.subsets, self.subset_size, self.seed)
            point = result.mean
            details = {"subsets": result.subsets, "subset_size": result.subset_size, "subset_std": result.std,
                       "seed": self.seed, "draws": self.input.kid_draws}

            def statistic(x: np.ndarray, y: np.ndarray) -> float:
                return kernels.kid(x, y, max(1, self.subsets // 10), self.subset_size, self.seed).mean

        low, high = kernels.block_bootstrap_interval(statistic, generated, real, self.resamples, self.seed)
        if self.resamples:
            details["block"] = kernels.default_block(len(generated))
        return SetValue(float(point), low, high, self.resamples, len(generated), len(real), details)


def protocol_reason(name: str, protocol_id: str) -> str | None:
    """Why set metric ``name`` is not defined under ``protocol_id``, or None."""
    if protocol_id in INPUTS:
        return INPUTS[protocol_id].no_kid if name == "kid" else None
    return f"{name} is not part of protocol {protocol_id!r}; use --protocol {' or '.join(INPUTS)}"


def set_reason(name: str, protocol_id: str, options: dict[str, Any]) -> str | None:
    """Why ``name`` cannot run under ``protocol_id``: not defined there, or the protocol's weight file is
    missing or unusable (with the command that fetches it); None when it can (FID's and KID's
    ``protocol_check``)."""
    reason = protocol_reason(name, protocol_id)
    if reason is None:
        key = INPUTS[protocol_id].weights
        try:
            usable_weight(key, options.get("fid_weights"))
        except WeightsMissingError as error:
            return f"{error}; fetch it with: cabench weights --download {key}"
    return reason


def set_unavailable(options: dict[str, Any]) -> str | None:
    """Why FID/KID cannot run under the default protocols (pytorch-fid's Inception file); other protocols'
    files are checked per protocol (:func:`set_reason`)."""
    return set_reason("fid", "pytorch-fid", options)


def _factory(name: str):
    def factory(device: torch.device, protocol: Any = None, fid_weights: str | None = None,
                resamples: int = DEFAULT_RESAMPLES, kid_subsets: int = kernels.KID_SUBSETS,
                kid_subset_size: int | None = kernels.KID_SUBSET_SIZE, seed: int = kernels.KID_SEED) -> SetMetric:
        return SetMetric(name, protocol, device, fid_weights, resamples, kid_subsets, kid_subset_size, seed)

    return factory


_OPTIONS = {"fid_weights": None, "resamples": DEFAULT_RESAMPLES}
register(MetricSpec("fid", higher_is_better=False, unit="",
                    description="Fréchet Inception distance of the generated frames to the ground truth's (a set value)",
                    factory=_factory("fid"), kind="set", needs=("weights:pt_inception-2015-12-05-6726825d.pth",),
                    defaults=dict(_OPTIONS), check=set_unavailable, protocol_check=partial(set_reason, "fid"),
                    paper_format=".2f", value_range=(0.0, np.inf)))
register(MetricSpec("kid", higher_is_better=False, unit="",
                    description="kernel Inception distance (torch-fidelity's subsets estimator; a set value)",
                    factory=_factory("kid"), kind="set", needs=("weights:pt_inception-2015-12-05-6726825d.pth",),
                    defaults={**_OPTIONS, "kid_subsets": kernels.KID_SUBSETS, "kid_subset_size": kernels.KID_SUBSET_SIZE},
                    check=set_unavailable, protocol_check=partial(set_reason, "kid"),
                    paper_format=".4f", value_range=(-np.inf, np.inf)))
