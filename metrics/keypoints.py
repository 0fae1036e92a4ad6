"""AKD, the average keypoint distance of FOMM's ``pose-evaluation`` (``extract.py --type face_pose`` + ``cmp_kp.py``).

Per frame: FAN's 68 landmarks of the ground truth and of the generated frame (:mod:`metrics.fan`, as
``face_alignment.FaceAlignment(LandmarksType._2D, flip_input=False).get_landmarks`` gives them, the
first face), and ``np.mean(np.abs(kp_gt - kp_generated))``: the mean absolute difference over the
136 coordinates, in pixels of the frame (not a Euclidean distance; cmp_kp.py's definition). The
paper's AKD is the mean over frames (cmp_kp.py skips frames whose generated landmarks are missing;
here those frames are NaN, which summaries skip and count).

Recorded deviation: face_alignment finds the face box with its S3FD detector; here dlib's box is
given to FAN instead (``get_landmarks(frame, detected_faces=[box])`` in face_alignment's terms):
the ground truth's box for both frames with ``face_region="gt"`` (the default, as the other face
metrics), or dlib's detection in each frame with ``"detect"``. FAN's crop scale was tuned to S3FD's
boxes, so absolute values can differ from published ones. The ground truth's landmarks are computed
once per frame for every method.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from metrics.face import (
    FACE_REGIONS,
    FAN_VERSION,
    check_backend,
    landmark_pairs,
    landmark_weights,
    landmarks_unavailable,
)
from metrics.registry import Batch, Evaluator, MetricSpec, keyword_defaults, register

AKD_VERSION = FAN_VERSION


def akd(pred: np.ndarray, gt: np.ndarray) -> float:
    """cmp_kp.py's per-frame value: the mean absolute coordinate difference of two (68,2) landmark sets."""
    return float(np.mean(np.abs(np.asarray(gt, np.float64) - np.asarray(pred, np.float64))))


class KeypointDistance(Evaluator):
    """``akd`` (see the module docstring); ``landmarks="dlib"`` measures it on dlib's 68 landmarks instead
    of FAN's (the landmarks ``lmd`` uses by default; not pose-evaluation's number)."""

    def __init__(self, device: torch.device, *, fan_weights: str | None = None, face_region: str = "gt",
                 landmarks: str = "fan"):
        from metrics.errors import InputError

        if face_region not in FACE_REGIONS:
            raise InputError(f"akd: face_region must be one of {', '.join(FACE_REGIONS)}, got {face_region!r}")
        check_backend("akd", landmarks)
        self.columns = ("akd",)
        self.device, self.weights, self.face_region, self.landmarks = device, fan_weights, face_region, landmarks

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        pred, gt = landmark_pairs(batch, self.landmarks, self.face_region, self.weights, self.device)
        return {"akd": np.array([np.nan if p is None or g is None else akd(p, g) for p, g in zip(pred, gt)])}


def _factory(device: torch.device, protocol: Any = None, **options: Any) -> Evaluator:
    return KeypointDistance(device, **options)


AKD_DEFAULTS = keyword_defaults(KeypointDistance)
register(MetricSpec("akd", higher_is_better=False, unit="px",
                    description="AKD: mean absolute difference of FAN's 68 landmark coordinates, generated vs ground "
                                "truth (FOMM's pose-evaluation)",
                    factory=_factory, needs=("package:dlib", "weights:2DFAN-4.pth.tar"),
                    defaults=AKD_DEFAULTS, check=lambda options: landmarks_unavailable({**AKD_DEFAULTS, **options}),
                    kind="face", trace=True,
                    weights=lambda options: landmark_weights({**AKD_DEFAULTS, **options}),
                    value_range=(0.0, math.inf), version=AKD_VERSION))
