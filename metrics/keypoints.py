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
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from metrics.errors import WeightsMissingError
from metrics.face import FACE_REGIONS, _dlib_options, gt_faces
from metrics.fan import FAN_WEIGHTS, fan_landmarks, load_fan
from metrics.landmarks import DLIB_LANDMARKS
from metrics.registry import Batch, Evaluator, MetricSpec, keyword_defaults, register
from metrics.truth import weight_stamp
from metrics.weights import usable_weight

AKD_VERSION = 1


@lru_cache(maxsize=2)
def _fan(path: str, device_type: str):
    return load_fan(path, device_type)


def akd(pred: np.ndarray, gt: np.ndarray) -> float:
    """cmp_kp.py's per-frame value: the mean absolute coordinate difference of two (68,2) landmark sets."""
    return float(np.mean(np.abs(np.asarray(gt, np.float64) - np.asarray(pred, np.float64))))


class KeypointDistance(Evaluator):
    """``akd`` (see the module docstring)."""

    def __init__(self, device: torch.device, *, fan_weights: str | None = None, face_region: str = "gt"):
        from metrics.errors import InputError

        if face_region not in FACE_REGIONS:
            raise InputError(f"akd: face_region must be one of {', '.join(FACE_REGIONS)}, got {face_region!r}")
        self.columns = ("akd",)
        self.device, self.weights, self.face_region = device, fan_weights, face_region

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        from metrics.landmarks import detect_face

        path = usable_weight(FAN_WEIGHTS.key, self.weights)
        model = _fan(str(path), self.device.type)
        boxes = [None if face is None else face.box for face in gt_faces(batch)]
        found = [i for i, box in enumerate(boxes) if box is not None]

        def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
            images = batch.uint8("gt")
            return [{"landmarks": fan_landmarks(model, images[found[j]], boxes[found[j]])} for j in indices]

        options = {**_dlib_options(), "fan": weight_stamp(path), "version": AKD_VERSION}
        stored = batch.truth.get("fan", options, [(batch.gt_keys[i],) for i in found], compute)
        gt_points = {i: v["landmarks"] for i, v in zip(found, stored)}
        pred_images = batch.uint8("pred")
        if self.face_region == "detect":
            detected = batch.map(detect_face, [pred_images[i] for i in found])
            pred_boxes = {i: None if d is None else d[0] for i, d in zip(found, detected)}
        else:
            pred_boxes = {i: boxes[i] for i in found}
        values = np.full(len(batch), np.nan)
        for i in found:
            if pred_boxes[i] is not None:
                values[i] = akd(fan_landmarks(model, pred_images[i], pred_boxes[i]), gt_points[i])
        return {"akd": values}


def akd_unavailable(options: dict) -> str | None:
    from metrics.landmarks import dlib_unavailable

    try:
        usable_weight(FAN_WEIGHTS.key, options.get("fan_weights"))
    except WeightsMissingError as error:
        return str(error)
    return dlib_unavailable(options)


def _factory(device: torch.device, protocol: Any = None, **options: Any) -> Evaluator:
    return KeypointDistance(device, **options)


register(MetricSpec("akd", higher_is_better=False, unit="px",
                    description="AKD: mean absolute difference of FAN's 68 landmark coordinates, generated vs ground "
                                "truth (FOMM's pose-evaluation)",
                    factory=_factory, needs=("package:dlib", "weights:2DFAN-4.pth.tar"),
                    defaults=keyword_defaults(KeypointDistance), check=akd_unavailable, kind="face", trace=True,
                    weights=lambda options: {FAN_WEIGHTS.key: options.get("fan_weights"), DLIB_LANDMARKS.key: None},
                    value_range=(0.0, math.inf), version=AKD_VERSION))
