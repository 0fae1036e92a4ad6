"""dlib face detection, 68 facial landmarks and identity descriptors, offline.

Convention: landmarks are (68,2) float64 arrays of (x, y) in pixels of the image given, in the
iBUG 300-W order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67). A frame where no
face is found gives ``None``; callers turn that into NaN and count it. When several faces are
found, the one with the highest detector score is used. The model files are looked up in
``$CABENCH_WEIGHTS``, the torch hub cache, then the ``face_recognition_models`` package (found
without importing it: its ``__init__`` needs ``pkg_resources``).
"""

from __future__ import annotations

import importlib.util
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metrics.errors import WeightsMissingError, WeightsUnusableError
from metrics.weights import from_manifest, usable_weight


def _dlib_weight(name: str):
    return from_manifest(name, check=lambda path: _dlib_model(name, str(path)))


DLIB_LANDMARKS = _dlib_weight("dlib-landmarks68")
DLIB_FACE_RECOGNITION = _dlib_weight("dlib-face-recognition")


@lru_cache(maxsize=2)
def _dlib_model(key: str, path: str):
    """dlib's model in ``path`` (loaded once: the weight check and the metrics share it)."""
    import dlib

    load = dlib.shape_predictor if key == DLIB_LANDMARKS.key else dlib.face_recognition_model_v1
    try:
        return load(path)
    except RuntimeError as error:
        raise WeightsUnusableError(path, f"not a dlib model file, or corrupt or truncated (dlib: {error})") from None


LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45
MOUTH = slice(48, 68)


def model_path(key: str) -> Path:
    """A dlib model file: $CABENCH_WEIGHTS, the torch hub cache, then the face_recognition_models package
    (checked to load: :func:`metrics.weights.usable_weight`)."""
    return usable_weight(key)


def dlib_unavailable(options: dict | None = None, identity: bool = False) -> str | None:
    """Why the dlib-based metrics cannot run (None when they can)."""
    if importlib.util.find_spec("dlib") is None:
        return "the `dlib` package is not installed (pip install dlib-bin)"
    keys = [DLIB_LANDMARKS.key] + ([DLIB_FACE_RECOGNITION.key] if identity else [])
    for key in keys:
        try:
            model_path(key)
        except WeightsMissingError as error:
            return str(error)
    return None


_IDLE_DETECTORS: queue.SimpleQueue = queue.SimpleQueue()


@contextmanager
def _detector() -> Iterator[Any]:
    """A dlib frontal face detector for the calling thread alone, for the time of one detection.

    A detector keeps the image it scans in itself, so two threads running one detector get each
    other's faces (measured: a wrong box on 1-2 of 16 frames); and making one takes about a second.
    So detectors are lent: an idle one is taken (a new one made when none is idle) and given back.
    """
    try:
        detector = _IDLE_DETECTORS.get_nowait()
    except queue.Empty:
        import dlib

        detector = dlib.get_frontal_face_detector()
    try:
        yield detector
    finally:
        _IDLE_DETECTORS.put(detector)


@lru_cache(maxsize=1)
def _predictor():
    """dlib's 68-landmark shape predictor (its prediction reads it only, so threads share it)."""
    return _dlib_model(DLIB_LANDMARKS.key, str(model_path(DLIB_LANDMARKS.key).resolve()))


@lru_cache(maxsize=2)
def _recognizer(device: str) -> torch.nn.Module:
    from metrics.dlib_resnet import DlibResNet

    return DlibResNet.from_file(model_path(DLIB_FACE_RECOGNITION.key)).to(device)


def _best_face(image: np.ndarray):
    upsample = 1 if min(image.shape[:2]) < 384 else 0  # dlib's detector misses faces under ~80 px
    with _detector() as detector:
        rects, scores, _ = detector.run(image, upsample, 0.0)
    if not rects:
        return None
    return rects[int(np.argmax(scores))]


def detect_face(image: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The most confident face in an (H,W,3) uint8 RGB image: its detector box (left, top, right,
    bottom) and its 68 landmarks (68,2); None when there is none."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    rect = _best_face(image)
    if rect is None:
        return None
    box = (int(rect.left()), int(rect.top()), int(rect.right()), int(rect.bottom()))
    return box, landmarks_in_box(image, box)


def detect_landmarks(image: np.ndarray) -> np.ndarray | None:
    """68 landmarks (68,2) of the most confident face in an (H,W,3) uint8 RGB image, or None."""
    face = detect_face(image)
    return None if face is None else face[1]


def landmarks_in_box(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """68 landmarks (68,2) placed by dlib's shape predictor started from ``box`` (left, top, right,
    bottom): the face there is assumed, not detected, so every image gets landmarks."""
    import dlib

    shape = _predictor()(np.ascontiguousarray(image, dtype=np.uint8), dlib.rectangle(*(int(v) for v in box)))
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)


def face_chip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's 150x150 face chip (padding 0.25) aligned by ``landmarks``: what its descriptor sees."""
    import dlib

    from metrics.dlib_resnet import CHIP_PADDING, CHIP_SIZE

    points = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])
    left, top = landmarks.min(0)
    right, bottom = landmarks.max(0)
    shape = dlib.full_object_detection(dlib.rectangle(int(left), int(top), int(right), int(bottom)), points)
    return dlib.get_face_chip(np.ascontiguousarray(image, dtype=np.uint8), shape, CHIP_SIZE, CHIP_PADDING)


def chip_descriptors(chips: np.ndarray | list[np.ndarray], device: torch.device | str = "cpu") -> np.ndarray:
    """dlib's 128-d face descriptors (N,128) float64 of face chips (N,150,150,3) uint8 RGB, computed
    by :class:`metrics.dlib_resnet.DlibResNet` with dlib's weights."""
    if len(chips) == 0:
        return np.zeros((0, 128))
    net = _recognizer(str(torch.device(device)))
    batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).to(device)
    with torch.no_grad():
        return net(batch).double().cpu().numpy()


def face_descriptor(image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray | None:
    """dlib's 128-d face descriptor of the most confident face, or None when there is no face.

    With ``landmarks`` given, the face chip is aligned on them instead of on a new detection.
    """
    if landmarks is None:
        landmarks = detect_landmarks(image)
        if landmarks is None:
            return None
    return chip_descriptors([face_chip(image, landmarks)])[0]


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45): the 300-W normalisation."""
    return float(np.linalg.norm(landmarks[RIGHT_EYE_OUTER] - landmarks[LEFT_EYE_OUTER]))


def similarity_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` (K,2) mapped onto ``target`` by the least-squares similarity (Umeyama 1991):
    rotation (no reflection), isotropic scale and translation."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s)
    d = np.sign(np.linalg.det(u @ vt))
    correction = np.diag([1.0, d])
    rotation = u @ correction @ vt
    scale = float((sigma * np.diag(correction)).sum() / (s**2).sum())
    return scale * s @ rotation.T + mu_t
