"""CSIM with ArcFace as insightface computes it: ``csim_arcface``, the ArcFace variant of ``csim``.

The number LivePortrait, GAGAvatar, MuseTalk and others report as CSIM: the cosine similarity of the
ArcFace embeddings of the generated and the ground-truth face, each computed as insightface's
``ArcFaceONNX.get`` computes it:

- five keypoints (eye centres, nose tip, mouth corners) aligned onto insightface's ``arcface_dst``
  template by a least-squares similarity (``skimage.transform.SimilarityTransform.estimate``, as its
  ``face_align.estimate_norm``), the frame warped to 112x112 by ``cv2.warpAffine`` (bilinear, border 0;
  its ``norm_crop``);
- ``cv2.dnn.blobFromImages(crop, 1 / std, (112, 112), (mean,) * 3, swapRB=True)``: RGB planes of
  ``(x - mean) / std`` with mean = std = 127.5, or 0 and 1 for a model whose graph normalises its
  input itself (a ``Sub`` and a ``Mul`` node among its first eight: the MXNet conversions), the rule
  of ``ArcFaceONNX.__init__``;
- the ONNX model run by onnxruntime: ``w600k_r50.onnx`` of insightface's ``buffalo_l`` pack (an
  IResNet-50 trained on WebFace600K, 512-d embedding) by default, any ArcFace ONNX with input
  (N,3,112,112) given by ``arcface_weights``; its SHA-256 is part of the stored values' key.

Recorded deviation: insightface takes the five keypoints from its SCRFD detector (``det_10g``); here
they come from dlib's 68 landmarks (mean of points 36-41 and 42-47, points 30, 48 and 54), located
as the other face metrics locate them (``face_region``: ``gt``, the default, starts the method's
landmarks from the ground truth's face box; ``detect`` detects the method's face). The ground truth's
embeddings are computed once per frame for every method (the batch's truth store).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metrics.digest import weight_digest
from metrics.errors import WeightsMissingError, WeightsUnusableError
from metrics.face import FACE_VERSION, FaceMetric, _dlib_options
from metrics.landmarks import DLIB_LANDMARKS
from metrics.registry import MetricSpec, keyword_defaults, register
from metrics.weights import from_manifest, usable_weight

ARCFACE_SIZE = 112
# insightface's face_align.arcface_dst: where the five keypoints land in a 112x112 crop
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def _check_onnx(path: Path) -> None:
    """The file must be an ONNX graph with one (N,3,112,112) input and one output."""
    inputs, outputs = _graph_io(str(path))
    if len(outputs) != 1 or len(inputs) < 1 or list(inputs[0][1:]) != [3, ARCFACE_SIZE, ARCFACE_SIZE]:
        raise WeightsUnusableError(path, f"not an ArcFace model (input {inputs[:1]}, {len(outputs)} outputs; "
                                         f"expected one (N,3,{ARCFACE_SIZE},{ARCFACE_SIZE}) input and one output)")


@lru_cache(maxsize=8)
def _graph_io(path: str) -> tuple[list[list[Any]], list[str]]:
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, ValueError, OSError ... on a bad file
        raise WeightsUnusableError(path, f"not an ONNX model ({type(error).__name__})") from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = [[d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input if i.name not in initializers]
    return inputs, [o.name for o in model.graph.output]


ARCFACE_WEIGHTS = from_manifest("arcface-buffalo-l", check=_check_onnx)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """insightface's five keypoints (image-left eye, image-right eye, nose, left and right mouth corners)
    from dlib's 68 landmarks (see the module docstring)."""
    lmk = np.asarray(landmarks, dtype=np.float64)
    return np.stack([lmk[36:42].mean(0), lmk[42:48].mean(0), lmk[30], lmk[48], lmk[54]])


def norm_crop(image: np.ndarray, points: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The (size,size,C) crop whose five keypoints lie on the ArcFace template (insightface's norm_crop)."""
    import cv2
    from skimage.transform import SimilarityTransform

    if size % 112 == 0:
        template, shift = ARCFACE_TEMPLATE * (size / 112.0), 0.0
    else:
        template, shift = ARCFACE_TEMPLATE * (size / 128.0), 8.0 * size / 128.0
    template = template.copy()
    template[:, 0] += shift
    transform = SimilarityTransform()
    transform.estimate(np.asarray(points, dtype=np.float64), template)
    return cv2.warpAffine(np.ascontiguousarray(image), transform.params[0:2, :], (size, size), borderValue=0.0)


class ArcFaceModel:
    """An ArcFace ONNX model run by onnxruntime, with insightface's input normalisation rule."""

    def __init__(self, path: str | Path, device: torch.device | None = None):
        import onnx
        import onnxruntime

        graph = onnx.load(str(path), load_external_data=False).graph
        names = [node.name for node in graph.node[:8]]
        normalises = any(n.startswith(("Sub", "_minus")) for n in names) and any(n.startswith(("Mul", "_mul")) for n in names)
        self.mean, self.std = (0.0, 1.0) if normalises else (127.5, 127.5)
        providers = ["CPUExecutionProvider"]
        if device is not None and device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def embed(self, crops_rgb: list[np.ndarray]) -> np.ndarray:
        """(N,D) embeddings of 112x112 uint8 RGB crops (blobFromImages' arithmetic: (x - mean) * (1 / std))."""
        if not crops_rgb:
            return np.zeros((0, 0), np.float32)
        batch = np.stack(crops_rgb).astype(np.float32)
        blob = ((batch - np.float32(self.mean)) * np.float32(1.0 / self.std)).transpose(0, 3, 1, 2)
        return np.asarray(self.session.run([self.output], {self.input: np.ascontiguousarray(blob)})[0])


@lru_cache(maxsize=4)
def arcface_model(path: str, device_type: str) -> ArcFaceModel:
    return ArcFaceModel(path, torch.device(device_type))


def model_sha256(path: Path) -> str:
    """SHA-256 of the model file (recorded with the embeddings it produced)."""
    return weight_digest(path)[1]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """insightface's compute_sim: dot / (norm * norm), in float64."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class ArcFaceIdentity(FaceMetric):
    """Cosine similarity of ArcFace embeddings of the insightface-aligned crops (see the module docstring).

    arcface_weights: an explicit ONNX file (None: the manifest's file where ``cabench weights`` finds it)."""

    def __init__(self, name: str, device: torch.device, *, arcface_weights: str | None = None, **face: Any):
        super().__init__(name, device, **face)
        self.arcface_weights = arcface_weights

    def compare(self, batch, found, pred_lmk, gt_lmk):
        path = usable_weight(ARCFACE_WEIGHTS.key, self.arcface_weights)
        model = arcface_model(str(path), self.device.type)

        def embed(images: np.ndarray, landmarks, frames: list[int]) -> np.ndarray:
            crops = batch.map(lambda i: norm_crop(images[i], five_points(landmarks[i])), frames)
            return model.embed(crops)

        def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
            return [{"embedding": e} for e in embed(batch.uint8("gt"), gt_lmk, [found[j] for j in indices])]

        options = {**_dlib_options(), "arcface": model_sha256(path), "version": ARCFACE_VERSION}
        stored = batch.truth.get("arcface", options, [(batch.gt_keys[i],) for i in found], compute)
        pred = embed(batch.uint8("pred"), pred_lmk, found)
        return np.array([cosine(p, g["embedding"]) for p, g in zip(pred, stored)])


def arcface_unavailable(options: dict) -> str | None:
    import importlib.util

    from metrics.landmarks import dlib_unavailable

    for package in ("onnxruntime", "onnx", "skimage"):
        if importlib.util.find_spec(package) is None:
            return f"the `{package}` package is not installed"
    try:
        usable_weight(ARCFACE_WEIGHTS.key, options.get("arcface_weights"))
    except WeightsMissingError as error:
        return str(error)
    return dlib_unavailable(options)


def _factory(device: torch.device, protocol: Any = None, **options: Any) -> FaceMetric:
    return ArcFaceIdentity("csim_arcface", device, **options)


ARCFACE_VERSION = 1
register(MetricSpec("csim_arcface", higher_is_better=True, unit="",
                    description="CSIM with ArcFace: cosine similarity of insightface-aligned ArcFace (w600k_r50) "
                                "embeddings, generated vs ground truth",
                    factory=_factory,
                    needs=("package:dlib", "package:onnxruntime", "weights:w600k_r50.onnx"),
                    defaults=keyword_defaults(ArcFaceIdentity, FaceMetric), check=arcface_unavailable, kind="face",
                    weights=lambda options: {ARCFACE_WEIGHTS.key: options.get("arcface_weights"), DLIB_LANDMARKS.key: None},
                    trace=True, value_range=(-1.0, 1.0), version=FACE_VERSION * 100 + ARCFACE_VERSION))
