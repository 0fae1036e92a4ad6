"""Face metrics: DECA pose / expression error, dlib-landmark pose, expression and distance, identity.

Every metric compares the generated frame t with the ground-truth frame t. The ground truth's
face is found by dlib's detector (:mod:`metrics.landmarks`; the most confident face). Where the
method's face is looked for is the option ``face_region``:

- ``"gt"`` (the default): in the ground truth's face region of that frame. dlib's shape predictor
  places the method's 68 landmarks starting from the ground truth's face box, the identity
  descriptor is computed on the chip those landmarks align, and DECA crops both frames by the
  ground truth's landmark box (as IMavatar crops by ground-truth keypoints). Every frame where the
  ground truth has a face gets a value, so a method cannot escape a face metric by destroying the
  face: a blurred, blocky or noised face is measured, and a face that is gone scores badly instead
  of dropping out of the mean.
- ``"detect"``: dlib's detector is run on the method's frame too, each frame cropped by its own
  landmarks (the behaviour of version 1). A frame where the detector finds no face in the method's
  frame is NaN, so the mean covers only the frames where the method kept a detectable face: a
  selection that favours the methods that destroy faces.

Either way a frame where the ground truth has no face gets NaN (counted by the summaries, never
fatal). What depends on the ground truth alone (its face box and landmarks, descriptor, DECA
codes) is computed once through the batch's truth store, for every method.

- ``deca_pe`` / ``deca_ee``: DECA's coarse encoder (``E_flame`` of ``deca_model.tar``) on DECA's
  crop; L2 distance of the 6-d pose (global + jaw axis-angle) and of the 50-d expression code. No
  FLAME model is needed.
- ``lmk_pose``: head rotation by ``cv2.solvePnP`` of six landmarks against a generic 3D face
  (focal length = image width, principal point = image centre); geodesic angle in degrees. Its
  noise floor, the ground truth against itself JPEG-compressed (q50, q90) or blurred (sigma 1), is
  a mean of about 1.5 degrees with single frames off by several (measured in docs/reliability.md):
  differences between methods below about 2 degrees are within it.
- ``lmk_expr``: mean landmark distance after the least-squares similarity alignment of the
  generated landmarks onto the ground truth's (points 17-67: the jaw line follows head pose more
  than expression), over the inter-ocular distance (outer eye corners).
- ``lmd`` / ``mlmd``: mean distance of all 68 / the 20 mouth landmarks, over the inter-ocular distance.
- ``csim``: cosine similarity of dlib's 128-d face-recognition descriptors (dlib's network with
  dlib's weights, run by torch: :mod:`metrics.dlib_resnet`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metrics.errors import InputError, WeightsMissingError, WeightsUnusableError
from metrics.landmarks import (
    DLIB_FACE_RECOGNITION,
    DLIB_LANDMARKS,
    MOUTH,
    chip_descriptors,
    detect_face,
    detect_landmarks,
    dlib_unavailable,
    face_chip,
    interocular,
    landmarks_in_box,
    model_path,
    similarity_align,
)
from metrics.registry import Batch, Evaluator, MetricSpec, keyword_defaults, register
from metrics.truth import weight_stamp
from metrics.weights import checked_state, from_manifest, usable_weight

DECA_WEIGHTS = from_manifest("deca", check=lambda path: deca_state(path))

# ---------------------------------------------------------------------------- DECA

DECA_PARAMS = (("shape", 100), ("tex", 50), ("exp", 50), ("pose", 6), ("cam", 3), ("light", 27))
DECA_CROP = 224


class DecaEncoder(nn.Module):
    """DECA's coarse encoder: ResNet-50 without classifier, Linear 2048->1024, ReLU, Linear 1024->236.

    Module names follow DECA's ``ResnetEncoder`` (``encoder.*``, ``layers.0``, ``layers.2``), so
    ``E_flame`` loads as it is. Inputs are (N,3,224,224) RGB in [0,1] with no normalisation, as DECA.
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet50

        self.encoder = resnet50(weights=None)
        self.encoder.fc = nn.Identity()  # DECA's ResNet has no classifier
        self.layers = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, sum(n for _, n in DECA_PARAMS)))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> DecaEncoder:
        """Load ``E_flame`` of a ``deca_model.tar`` strictly (:func:`deca_state`)."""
        state = deca_state(path)
        model = cls()
        model.load_state_dict(state, strict=True)
        return model.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(self.encoder(images))

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """FLAME codes of (N,3,224,224) crops in [0,1]: shape, tex, exp, pose, cam, light (N,9,3)."""
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, DECA_CROP, DECA_CROP):
            raise InputError(f"DECA takes (N,3,224,224) crops, got {tuple(images.shape)}")
        device = next(self.parameters()).device
        with torch.no_grad():
            codes = self(images.float().to(device))
        out, start = {}, 0
        for name, size in DECA_PARAMS:
            out[name] = codes[:, start : start + size]
            start += size
        out["light"] = out["light"].reshape(-1, 9, 3)
        return out


def deca_crop_transform(landmarks: np.ndarray, scale: float = 1.25, size: int = DECA_CROP) -> np.ndarray:
    """2x3 affine matrix from the image to DECA's crop: the landmarks' box, its mean side x1.1 x``scale``.

    Corners (centre -/+ side/2) map to (0, 0) and (size-1, size-1), as DECA's ``TestData``.
    """
    left, top = landmarks.min(0)
    right, bottom = landmarks.max(0)
    side = int((right - left + bottom - top) / 2 * 1.1 * scale)
    center = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    src = np.float32([center - side / 2, [center[0] - side / 2, center[1] + side / 2], [center[0] + side / 2, center[1] - side / 2]])
    dst = np.float32([[0, 0], [0, size - 1], [size - 1, 0]])
    import cv2

    return cv2.getAffineTransform(src, dst)


def deca_crop(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """DECA's input: (H,W,3) uint8 RGB -> (224,224,3) float32 in [0,1], bilinear, zeros outside."""
    import cv2

    matrix = deca_crop_transform(landmarks)
    return cv2.warpAffine(image.astype(np.float32) / 255.0, matrix, (DECA_CROP, DECA_CROP), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def deca_state(path: str | Path) -> dict[str, torch.Tensor]:
    """``E_flame`` of a ``deca_model.tar``, checked by name and shape against :class:`DecaEncoder`.

    Raises:
        WeightsUnusableError: the file is absent or a folder, corrupt or truncated, has no
            ``E_flame``, or its keys or shapes do not fit (one line, naming the file).
    """
    if not Path(path).is_file():
        raise WeightsUnusableError(path, "no such file" if not Path(path).exists() else "is a folder, not a DECA checkpoint")
    return checked_state(path, DecaEncoder, "DECA's coarse encoder (E_flame)", entry="E_flame")


_DECA_CACHE: dict[tuple, DecaEncoder] = {}


def deca_model(weights: str | None, device: torch.device) -> DecaEncoder:
    path = usable_weight(DECA_WEIGHTS.key, weights)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, str(device))
    if key not in _DECA_CACHE:
        _DECA_CACHE.clear()
        _DECA_CACHE[key] = DecaEncoder.from_checkpoint(path).to(device)
    return _DECA_CACHE[key]


def _deca_weights(options: dict) -> dict[str, str | None]:
    """DECA's checkpoint and the landmarks that crop its input."""
    return {DECA_WEIGHTS.key: options.get("deca_weights"), DLIB_LANDMARKS.key: None}


def deca_unavailable(options: dict) -> str | None:
    reason = dlib_unavailable()
    if reason:
        return reason
    try:
        usable_weight(DECA_WEIGHTS.key, options.get("deca_weights"))
    except WeightsMissingError as error:
        return str(error)
    return None


# ---------------------------------------------------------------------------- head pose

# A generic face (millimetre-like units) in camera axes: x right, y down, z away from the camera,
# nose tip at the origin. Points: nose tip 30, chin 8, outer eye corners 36 / 45, mouth corners 48 / 54.
GENERIC_FACE = np.array(
    [(0.0, 0.0, 0.0), (0.0, 330.0, 65.0), (-225.0, -170.0, 135.0), (225.0, -170.0, 135.0),
     (-150.0, 150.0, 125.0), (150.0, 150.0, 125.0)],
    dtype=np.float64,
)
GENERIC_FACE_POINTS = [30, 8, 36, 45, 48, 54]


def head_rotation(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Rotation (3,3) of the generic face that projects onto ``landmarks`` (a pinhole camera with
    focal length = image width and principal point = image centre, no distortion)."""
    import cv2

    height, width = image_size
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    image_points = np.ascontiguousarray(landmarks[GENERIC_FACE_POINTS], dtype=np.float64)
    ok, rvec, _ = cv2.solvePnP(GENERIC_FACE, image_points, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return np.full((3, 3), np.nan)
    return cv2.Rodrigues(rvec)[0]


def geodesic_degrees(rotation_a: np.ndarray, rotation_b: np.ndarray) -> float:
    """Angle in degrees of the rotation taking ``rotation_b`` to ``rotation_a`` (the length of its
    axis-angle vector, which stays accurate near zero where arccos of the trace does not)."""
    import cv2

    if not (np.isfinite(rotation_a).all() and np.isfinite(rotation_b).all()):
        return float("nan")
    axis_angle = cv2.Rodrigues(np.ascontiguousarray(rotation_a @ rotation_b.T))[0]
    return float(np.degrees(np.linalg.norm(axis_angle)))


def roll_degrees(rotation: np.ndarray) -> float:
    """In-plane rotation (about the optical axis) of R = Rz(roll) Ry(yaw) Rx(pitch), in degrees."""
    return float(np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0])))


# ---------------------------------------------------------------------------- landmark distances

EXPRESSION_POINTS = slice(17, 68)


def landmark_distance(pred: np.ndarray, gt: np.ndarray, points: slice = slice(0, 68)) -> float:
    """Mean distance of the landmarks ``points`` over the ground truth's inter-ocular distance."""
    return float(np.linalg.norm(pred[points] - gt[points], axis=1).mean() / interocular(gt))


def expression_distance(pred: np.ndarray, gt: np.ndarray) -> float:
    """:func:`landmark_distance` of points 17-67 after aligning them on the ground truth's by a similarity."""
    aligned = similarity_align(pred[EXPRESSION_POINTS], gt[EXPRESSION_POINTS])
    return float(np.linalg.norm(aligned - gt[EXPRESSION_POINTS], axis=1).mean() / interocular(gt))


# ---------------------------------------------------------------------------- per-batch face data

FACE_REGIONS = ("gt", "detect")


@dataclass(frozen=True)
class Face:
    """A face dlib found in a frame: the detector's box (left, top, right, bottom) and 68 landmarks."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray


def _dlib_options(identity: bool = False) -> dict[str, Any]:
    """What dlib's values depend on besides the frame: its version and model files, and the face
    metrics' version."""
    import dlib

    options = {"dlib": dlib.__version__, "predictor": weight_stamp(model_path("dlib-landmarks68")), "version": FACE_VERSION}
    if identity:
        options["recognizer"] = weight_stamp(model_path("dlib-face-recognition"))
    return options


def gt_faces(batch: Batch) -> list[Face | None]:
    """The ground truth's face in every frame (dlib's most confident detection), computed once per frame."""

    def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
        images = batch.uint8("gt")
        found = batch.map(detect_face, [images[i] for i in indices])
        return [{} if face is None else {"box": np.asarray(face[0], dtype=np.int64), "landmarks": face[1]}
                for face in found]

    def faces() -> list[Face | None]:
        stored = batch.truth.get("face", _dlib_options(), [(key,) for key in batch.gt_keys], compute)
        return [Face(tuple(int(v) for v in value["box"]), value["landmarks"]) if "box" in value else None
                for value in stored]

    return batch.share("gt faces", faces)


def pred_landmarks(batch: Batch, face_region: str) -> list[np.ndarray | None]:
    """The method's landmarks in every frame, shared by the face metrics of the batch.

    ``face_region="gt"``: dlib's shape predictor started from the ground truth's face box of that
    frame (None only where the ground truth has no face); ``"detect"``: dlib's detector run on the
    method's frame (None where it finds no face).
    """

    def compute() -> list[np.ndarray | None]:
        images = batch.uint8("pred")
        if face_region == "detect":
            return batch.map(detect_landmarks, images)
        boxes = [None if face is None else face.box for face in gt_faces(batch)]
        return batch.map(lambda item: None if item[1] is None else landmarks_in_box(*item), list(zip(images, boxes)))

    return batch.share(("pred landmarks", face_region), compute)


LANDMARK_BACKENDS = ("dlib", "fan")
FAN_VERSION = 1  # what FAN's stored ground-truth landmarks depend on besides the weights (shared by akd and lmd)


@lru_cache(maxsize=2)
def _fan(path: str, device_type: str):
    from metrics.fan import load_fan

    return load_fan(path, device_type)


def fan_weight_path(weights: str | None) -> Path:
    from metrics.fan import FAN_WEIGHTS

    return usable_weight(FAN_WEIGHTS.key, weights)


def gt_fan_landmarks(batch: Batch, weights: str | None, device: torch.device) -> list[np.ndarray | None]:
    """FAN's 68 landmarks of the ground truth in every frame, from its dlib face box (None where dlib finds
    no face): computed once per frame for every method and every metric (``akd``, ``lmd`` with
    ``landmarks="fan"``) through the truth store."""
    from metrics.fan import fan_landmarks

    path = fan_weight_path(weights)

    def landmarks() -> list[np.ndarray | None]:
        boxes = [None if face is None else face.box for face in gt_faces(batch)]
        found = [i for i, box in enumerate(boxes) if box is not None]
        model = _fan(str(path), device.type)

        def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
            images = batch.uint8("gt")
            return [{"landmarks": fan_landmarks(model, images[found[j]], boxes[found[j]])} for j in indices]

        options = {**_dlib_options(), "fan": weight_stamp(path), "version": FAN_VERSION}
        stored = batch.truth.get("fan", options, [(batch.gt_keys[i],) for i in found], compute)
        out: list[np.ndarray | None] = [None] * len(batch)
        for i, value in zip(found, stored):
            out[i] = value["landmarks"]
        return out

    return batch.share(("gt fan landmarks", str(path)), landmarks)


def pred_fan_landmarks(batch: Batch, weights: str | None, device: torch.device, face_region: str) -> list[np.ndarray | None]:
    """FAN's 68 landmarks of the method's frames, shared by the metrics of the batch: from the ground
    truth's face box (``face_region="gt"``) or from dlib's detection in the method's frame (``"detect"``);
    None where there is no box."""
    from metrics.fan import fan_landmarks

    path = fan_weight_path(weights)

    def landmarks() -> list[np.ndarray | None]:
        images = batch.uint8("pred")
        if face_region == "detect":
            boxes = [None if found is None else found[0] for found in batch.map(detect_face, list(images))]
        else:
            boxes = [None if face is None else face.box for face in gt_faces(batch)]
        model = _fan(str(path), device.type)
        return [None if box is None else fan_landmarks(model, image, box) for image, box in zip(images, boxes)]

    return batch.share(("pred fan landmarks", str(path), face_region), landmarks)


def landmark_pairs(batch: Batch, backend: str, face_region: str, fan_weights: str | None,
                   device: torch.device) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
    """(method's, ground truth's) 68 landmarks per frame from one backend: ``dlib`` (its shape predictor,
    :func:`pred_landmarks`) or ``fan`` (face_alignment's FAN, :mod:`metrics.fan`); the one landmark
    stack behind ``lmd``, ``mlmd`` and ``akd``."""
    if backend == "fan":
        return (pred_fan_landmarks(batch, fan_weights, device, face_region),
                gt_fan_landmarks(batch, fan_weights, device))
    return pred_landmarks(batch, face_region), [None if face is None else face.landmarks for face in gt_faces(batch)]


def check_backend(name: str, landmarks: str) -> None:
    if landmarks not in LANDMARK_BACKENDS:
        raise InputError(f"{name}: landmarks must be one of {', '.join(LANDMARK_BACKENDS)}, got {landmarks!r}")


def landmarks_unavailable(options: dict) -> str | None:
    """Why a metric on ``options["landmarks"]`` cannot run: dlib (always: it finds the face box), and FAN's
    weights with ``landmarks="fan"``."""
    reason = dlib_unavailable(options)
    if reason or options.get("landmarks") != "fan":
        return reason
    try:
        fan_weight_path(options.get("fan_weights"))
    except WeightsMissingError as error:
        return str(error)
    return None


def landmark_weights(options: dict) -> dict[str, str | None]:
    """The weight files a landmark metric loads with ``options``."""
    from metrics.fan import FAN_WEIGHTS

    files: dict[str, str | None] = {DLIB_LANDMARKS.key: None}
    if options.get("landmarks") == "fan":
        files[FAN_WEIGHTS.key] = options.get("fan_weights")
    return files


class FaceMetric(Evaluator):
    """A per-frame comparison of the faces of the generated and ground-truth frames."""

    def __init__(self, name: str, device: torch.device, *, face_region: str = "gt"):
        self.columns = (name,)
        self.name = name
        self.device = device
        self.face_region = face_region
        if self.face_region not in FACE_REGIONS:
            raise InputError(f"{name}: face_region must be one of {', '.join(FACE_REGIONS)}, got {self.face_region!r}")
        self.frames_without_face = 0

    def landmarks_of(self, batch: Batch) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
        """(method's, ground truth's) landmarks per frame: dlib's."""
        return landmark_pairs(batch, "dlib", self.face_region, None, self.device)

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        pred_lmk, gt_lmk = self.landmarks_of(batch)
        values = np.full(len(batch), np.nan)
        found = [i for i in range(len(batch)) if pred_lmk[i] is not None and gt_lmk[i] is not None]
        self.frames_without_face += len(batch) - len(found)
        if found:
            values[found] = self.compare(batch, found, pred_lmk, gt_lmk)
        return {self.name: values}

    def compare(self, batch: Batch, found: list[int], pred_lmk, gt_lmk) -> np.ndarray:
        raise NotImplementedError


class LandmarkPose(FaceMetric):
    def compare(self, batch, found, pred_lmk, gt_lmk):
        size = tuple(batch.gt.shape[-2:])
        return np.array([geodesic_degrees(head_rotation(pred_lmk[i], size), head_rotation(gt_lmk[i], size)) for i in found])


class LandmarkExpression(FaceMetric):
    def compare(self, batch, found, pred_lmk, gt_lmk):
        return np.array([expression_distance(pred_lmk[i], gt_lmk[i]) for i in found])


class LandmarkDistance(FaceMetric):
    """``lmd`` / ``mlmd`` on the landmarks of ``landmarks``: ``dlib`` (the default) or ``fan`` (FAN's 68
    points as ``akd`` gets them; ``fan_weights``: its state-dict file, None: looked up)."""

    points = slice(0, 68)

    def __init__(self, name: str, device: torch.device, *, landmarks: str = "dlib", fan_weights: str | None = None,
                 **face: Any):
        super().__init__(name, device, **face)
        check_backend(name, landmarks)
        self.landmarks, self.fan_weights = landmarks, fan_weights

    def landmarks_of(self, batch: Batch) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
        return landmark_pairs(batch, self.landmarks, self.face_region, self.fan_weights, self.device)

    def compare(self, batch, found, pred_lmk, gt_lmk):
        return np.array([landmark_distance(pred_lmk[i], gt_lmk[i], self.points) for i in found])


class MouthLandmarkDistance(LandmarkDistance):
    points = MOUTH


class Identity(FaceMetric):
    """Cosine similarity of dlib descriptors, each on the chip aligned by that frame's landmarks."""

    def compare(self, batch, found, pred_lmk, gt_lmk):
        pred_images = batch.uint8("pred")

        def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
            gt_images = batch.uint8("gt")
            chips = batch.map(lambda i: face_chip(gt_images[i], gt_lmk[i]), [found[j] for j in indices])
            return [{"descriptor": d} for d in chip_descriptors(chips, self.device)]

        keys = [(batch.gt_keys[i],) for i in found]
        stored = batch.truth.get("descriptor", _dlib_options(identity=True), keys, compute)
        gt_descriptors = np.stack([v["descriptor"] for v in stored])
        pred_chips = batch.map(lambda i: face_chip(pred_images[i], pred_lmk[i]), found)
        pred_descriptors = chip_descriptors(pred_chips, self.device)
        return np.array([float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
                         for a, b in zip(pred_descriptors, gt_descriptors)])


class DecaDistance(FaceMetric):
    """L2 distance of one DECA code (``exp`` or ``pose``) between generated and ground-truth crops.

    Both crops are DECA's box around the ground truth's landmarks with ``face_region="gt"`` (as
    IMavatar crops by ground-truth keypoints), each frame's own landmarks with ``"detect"``.
    """

    code = "pose"

    def __init__(self, name: str, device: torch.device, *, deca_weights: str | None = None, **face: Any):
        super().__init__(name, device, **face)
        self.deca_weights = deca_weights

    def compare(self, batch, found, pred_lmk, gt_lmk):
        weights = self.deca_weights
        crop_lmk = gt_lmk if self.face_region == "gt" else pred_lmk

        def encode(images: np.ndarray, landmarks, frames: list[int]) -> torch.Tensor:
            crops = np.stack([deca_crop(images[i], landmarks[i]) for i in frames])
            model = deca_model(weights, self.device)
            return model(torch.from_numpy(crops).permute(0, 3, 1, 2).to(self.device)).float().cpu()

        def gt_codes() -> torch.Tensor:
            options = {"weights": weight_stamp(usable_weight(DECA_WEIGHTS.key, weights)), "device": self.device.type,
                       "torch": torch.__version__, "version": FACE_VERSION}

            def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
                return [{"codes": c} for c in encode(batch.uint8("gt"), gt_lmk, [found[j] for j in indices]).numpy()]

            stored = batch.truth.get("deca", options, [(batch.gt_keys[i],) for i in found], compute)
            return torch.from_numpy(np.stack([v["codes"] for v in stored]))

        pred = batch.share(("deca pred", weights, self.face_region, tuple(found)),
                           lambda: encode(batch.uint8("pred"), crop_lmk, found))
        gt = batch.share(("deca gt", weights, tuple(found)), gt_codes)
        return torch.linalg.vector_norm(deca_code(pred, self.code) - deca_code(gt, self.code), dim=1).double().numpy()


class DecaExpression(DecaDistance):
    code = "exp"


def deca_code(codes: torch.Tensor, name: str) -> torch.Tensor:
    """One code (``pose``, ``exp``, ...) of DECA's 236 outputs (N,236)."""
    start = 0
    for code, size in DECA_PARAMS:
        if code == name:
            return codes[:, start : start + size]
        start += size
    raise KeyError(name)


# ---------------------------------------------------------------------------- registry


def _factory(cls, name: str):
    def factory(device: torch.device, protocol: Any = None, **options: Any) -> Evaluator:
        return cls(name, device, **options)

    return factory


def _dlib_check(options: dict) -> str | None:
    return dlib_unavailable(options)


def _identity_check(options: dict) -> str | None:
    return dlib_unavailable(options, identity=True)


_DLIB = ("package:dlib", "weights:shape_predictor_68_face_landmarks.dat")
_DECA = (*_DLIB, "weights:deca_model.tar (E_flame)")
# version 2: the method's face is located from the ground truth's face region by default
FACE_VERSION = 2
FACE_DEFAULTS = keyword_defaults(FaceMetric)

# Paper formats: the precision of the paper's Table 2 (PE 4 significant digits, EE 5).
register(MetricSpec("deca_pe", higher_is_better=False, unit="",
                    description="L2 distance of DECA's 6-d pose code (global + jaw axis-angle), generated vs ground truth",
                    factory=_factory(DecaDistance, "deca_pe"), needs=_DECA,
                    defaults=keyword_defaults(DecaDistance, FaceMetric), check=deca_unavailable, weights=_deca_weights,
                    kind="face",
                    paper_format=".4g", trace=True, value_range=(0.0, math.inf), version=FACE_VERSION))
register(MetricSpec("deca_ee", higher_is_better=False, unit="",
                    description="L2 distance of DECA's 50-d expression code, generated vs ground truth",
                    factory=_factory(DecaExpression, "deca_ee"), needs=_DECA,
                    defaults=keyword_defaults(DecaExpression, FaceMetric), check=deca_unavailable, weights=_deca_weights,
                    kind="face",
                    paper_format=".5g", trace=True, value_range=(0.0, math.inf), version=FACE_VERSION))
_LANDMARK_METRICS = (
    ("lmk_pose", LandmarkPose, "deg", "geodesic angle between head rotations from dlib landmarks (solvePnP, generic face)",
     False, (0.0, 180.0)),
    ("lmk_expr", LandmarkExpression, "IOD", "landmark distance (points 17-67) after similarity alignment, over inter-ocular distance",
     False, (0.0, math.inf)),
    ("lmd", LandmarkDistance, "IOD", "mean distance of the 68 landmarks (dlib's, or FAN's with landmarks=\"fan\") "
     "over the inter-ocular distance", True, (0.0, math.inf)),
    ("mlmd", MouthLandmarkDistance, "IOD", "mean distance of the 20 mouth landmarks over the inter-ocular distance",
     False, (0.0, math.inf)),
)
for _name, _cls, _unit, _description, _trace, _range in _LANDMARK_METRICS:
    _distance = issubclass(_cls, LandmarkDistance)
    register(MetricSpec(_name, higher_is_better=False, unit=_unit, description=_description,
                        factory=_factory(_cls, _name), needs=_DLIB,
                        defaults=keyword_defaults(_cls, FaceMetric) if _distance else dict(FACE_DEFAULTS),
                        check=landmarks_unavailable if _distance else _dlib_check,
                        weights=landmark_weights, kind="face", trace=_trace, value_range=_range,
                        version=FACE_VERSION))
register(MetricSpec("csim", higher_is_better=True, unit="",
                    description="cosine similarity of dlib face-recognition descriptors, generated vs ground truth",
                    factory=_factory(Identity, "csim"),
                    needs=(*_DLIB, "weights:dlib_face_recognition_resnet_model_v1.dat"),
                    defaults=dict(FACE_DEFAULTS), check=_identity_check, kind="face",
                    weights=lambda options: {DLIB_LANDMARKS.key: None, DLIB_FACE_RECOGNITION.key: None}, trace=True,
                    value_range=(-1.0, 1.0), version=FACE_VERSION))
