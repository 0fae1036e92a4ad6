"""Synthetic degradations of the ground truth, clearly named as such, for validating metrics and for the demo.

Each one damages the ground-truth frames in a way a metric should see, deterministically for a
``seed`` (per-frame noise is drawn from ``numpy.random.default_rng([seed, frame_id])``, so a frame
gets the same damage whichever batch it is read in):

- ``oversmooth``: Gaussian blur of standard deviation ``strength`` pixels (default 2.0), every frame;
- ``flicker``: per-frame brightness gain ``1 + strength * N(0, 1)`` (default 0.05);
- ``jitter``: per-frame translation ``strength * N(0, 1)`` pixels in x and y (default 1.0);
- ``expression_lag``: expressions lag ``strength`` frames behind (default 3). A synthetic
  sequence is re-rendered with the head pose of frame t and the expression of frame t - lag;
  other sequences show the whole frame t - lag (first frames repeat);
- ``colour_drift``: per-channel gains drifting linearly from 1 to ``1 + strength * d`` over the
  sequence, ``d`` a seeded random unit direction (default 0.1).

Colour changes are applied to the head only (where a matte is known) and the white background is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence as Ids

import numpy as np

from baselines.base import Adapter, MethodOutput
from benchmark.datasets.base import Sequence
from benchmark.io import Frames, FrameSource
from metrics.errors import CabenchError

DEFAULT_STRENGTH = {"oversmooth": 2.0, "flicker": 0.05, "jitter": 1.0, "expression_lag": 3.0, "colour_drift": 0.1}
# What each strength may be (low, high, whether the low end is allowed): a blur needs a positive
# standard deviation, the others are magnitudes; the upper ends are far past any useful damage (a
# 100-pixel blur or jitter, 10x brightness noise, a 1000-frame lag) and keep OpenCV's kernels small.
STRENGTH_RANGE = {"oversmooth": (0.0, 100.0, False), "flicker": (0.0, 10.0, True), "jitter": (0.0, 100.0, True),
                  "expression_lag": (0.0, 1000.0, True), "colour_drift": (0.0, 10.0, True)}
ROW = {
    "oversmooth": "Synthetic: over-smoothing",
    "flicker": "Synthetic: flicker",
    "jitter": "Synthetic: jitter",
    "expression_lag": "Synthetic: expression lag",
    "colour_drift": "Synthetic: colour drift",
}


class DegradedFrames(FrameSource):
    """The frames of ``sequence`` with one degradation applied on read."""

    def __init__(self, sequence: Sequence, ids: list[int], kind: str, strength: float, seed: int):
        self.sequence, self.kind, self.strength, self.seed = sequence, kind, float(strength), int(seed)
        self.frame_ids = list(ids)
        self.position = {frame: i for i, frame in enumerate(sequence.frame_ids)}
        self.name = f"{ROW[kind]} of {sequence.name}"
        self.size = sequence.frames.size
        self.fps = sequence.fps
        direction = np.random.default_rng([self.seed, 7]).standard_normal(3)
        self.direction = direction / np.linalg.norm(direction)

    def read(self, ids: Ids[int]) -> Frames:
        self._check_ids(ids)
        if self.kind == "expression_lag":
            return self._lagged(list(ids))
        frames = self.sequence.frames.read(list(ids))
        out = np.stack([self._one(frame, rgb) for frame, rgb in zip(ids, frames.rgb)])
        if frames.alpha is not None and self.kind in ("flicker", "colour_drift"):
            a = frames.alpha[..., None]
            out = np.rint(out * a + 255.0 * (1 - a)).clip(0, 255).astype(np.uint8)
        return Frames(list(ids), out, frames.alpha)

    def _one(self, frame: int, rgb: np.ndarray) -> np.ndarray:
        import cv2

        rng = np.random.default_rng([self.seed, frame])
        if self.kind == "oversmooth":
            return cv2.GaussianBlur(rgb, (0, 0), self.strength)
        if self.kind == "flicker":
            gain = 1.0 + self.strength * rng.standard_normal()
            return np.clip(rgb.astype(np.float32) * gain, 0, 255)
        if self.kind == "jitter":
            dx, dy = self.strength * rng.standard_normal(2)
            matrix = np.float32([[1, 0, dx], [0, 1, dy]])
            return cv2.warpAffine(rgb, matrix, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))
        if self.kind == "colour_drift":
            t = self.position[frame] / max(1, len(self.sequence.frame_ids) - 1)
            gains = 1.0 + self.strength * t * self.direction
            return np.clip(rgb.astype(np.float32) * gains, 0, 255)
        raise AssertionError(self.kind)

    def _lagged(self, ids: list[int]) -> Frames:
        lag = int(round(self.strength))
        all_ids = self.sequence.frame_ids
        earlier = [all_ids[max(0, self.position[f] - lag)] for f in ids]
        if self.sequence.kind != "synthetic" or "head_euler_deg" not in self.sequence.annotations:
            frames = self.sequence.frames.read(earlier)
            return Frames(list(ids), frames.rgb, frames.alpha)
        from benchmark.datasets.synthetic_face import EXPRESSION_NAMES, FaceParams, face_model, render

        model = face_model(self.size[0])
        euler = np.deg2rad(self.sequence.annotation("head_euler_deg", ids))
        expression = self.sequence.annotation("expression", earlier)[:, : len(EXPRESSION_NAMES)]
        rgbs, alphas = [], []
        for angles, expr in zip(euler, expression):
            out = render(model, FaceParams(*map(float, angles), *map(float, expr)))
            a = out.matte[..., None]
            rgbs.append(np.rint(out.rgb * a + 255.0 * (1 - a)).clip(0, 255).astype(np.uint8))
            alphas.append(out.matte)
        return Frames(list(ids), np.stack(rgbs), np.stack(alphas))


class Degraded(Adapter):
    """The ground truth with one synthetic degradation (``degradation``: see the module docstring)."""

    key, row = "degraded", "Synthetic degradation"
    role = "sanity"  # a check that the metrics notice damage, not a competitor

    def __init__(self, degradation: str, strength: float | None = None, seed: int = 0, name: str | None = None,
                 split: str = "test"):
        if degradation not in DEFAULT_STRENGTH:
            raise CabenchError(f"adapter 'degraded': degradation {degradation!r}; choose from {', '.join(DEFAULT_STRENGTH)}")
        super().__init__(name=name or ROW[degradation], split=split)
        self.degradation = degradation
        self.strength = DEFAULT_STRENGTH[degradation] if strength is None else float(strength)
        low, high, closed = STRENGTH_RANGE[degradation]
        if not (math.isfinite(self.strength) and (low <= self.strength if closed else low < self.strength)
                and self.strength <= high):
            raise CabenchError(f"adapter 'degraded': strength {strength!r} for {degradation}: must be a number "
                               f"{'from' if closed else 'above'} {low:g} {'to' if closed else 'up to'} {high:g}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise CabenchError(f"adapter 'degraded': seed {seed!r}: must be a non-negative integer")
        self.seed = seed

    def fingerprint(self, sequence: Sequence) -> str:
        """Degradations are computed on read from the ground truth (expression lag also from its
        head pose and expression annotations), so their stamp is that of the sequence."""
        return self.input_stamp(sequence, annotations=("head_euler_deg", "expression"))

    def outputs(self, sequence: Sequence) -> MethodOutput:
        frames = DegradedFrames(sequence, self.frame_ids(sequence), self.degradation, self.strength, self.seed)
        return MethodOutput(frames, {"synthetic": True, "degradation": self.degradation, "strength": self.strength,
                                     "seed": self.seed})
