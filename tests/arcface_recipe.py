"""Inputs of the ArcFace CSIM calibration, regenerated from a recipe: a real face photo (scikit-image's
astronaut) moving by a few pixels per frame, a damaged copy of it (blur + noise), the five keypoints
csim_arcface takes from dlib, and a random-weight ArcFace ONNX model.

The model is a small network (two strided convolutions with BatchNorm and PReLU, pooling, a linear
layer and BatchNorm to a 512-d embedding, IResNet's building blocks) initialised after
``torch.manual_seed(SEED)`` (the last BatchNorm's statistics stored, see :data:`EMBEDDING_STATS`) and
exported to ONNX with input (N,3,112,112): what insightface's
``ArcFaceONNX`` runs is any such graph, and w600k_r50 itself cannot be downloaded here. The exporter
folds each BatchNorm into the convolution before it, a float32 product whose last bits depend on the
CPU's SIMD kernels, so the model the table was made with is stored (:data:`STORED_MODEL`, its tensors'
digest in the table's manifest); the test checks that the recipe remakes it up to float32 rounding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0
FRAMES, SIZE = 4, 192
# the last BatchNorm's statistics (float32 mean and var of the embedding over random inputs), measured
# once by embedding_statistics() and stored: measured again on another CPU they differ in the last bits
EMBEDDING_STATS = Path(__file__).parent / "calibration" / "arcface_embedding_stats.npz"
# the exported model the table was made with (arcface_onnx's output on the machine that made it)
STORED_MODEL = Path(__file__).parent / "calibration" / "inputs" / "arcface_random.onnx"


@dataclass(frozen=True)
class FaceCase:
    name: str
    face_region: str  # where the method's landmarks start: "gt" (the ground truth's box) or "detect"


CASES = {c.name: c for c in (FaceCase("astronaut-gt", "gt"), FaceCase("astronaut-detect", "detect"),
                             FaceCase("astronaut-late", "gt"), FaceCase("astronaut-upside-down", "gt"))}


def clip() -> tuple[np.ndarray, np.ndarray]:
    """(gt, damaged): (FRAMES,SIZE,SIZE,3) uint8 RGB crops of the photo and the same blurred and noised."""
    import cv2
    from skimage import data

    photo = data.astronaut()
    gt = np.stack([cv2.resize(photo[20 + 3 * i: 276 + 3 * i, 92 + 2 * i: 348 + 2 * i], (SIZE, SIZE),
                              interpolation=cv2.INTER_AREA) for i in range(FRAMES)])
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 1.2) for f in gt]).astype(np.float64)
    damaged = np.clip(blurred + np.random.default_rng(0).normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
    return gt, damaged


def case_frames(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) of a case: the damaged copy; for ``astronaut-late`` the damaged copy two frames late; for
    ``astronaut-upside-down`` the damaged copy turned upside down (another face where the ground truth's is)."""
    gt, damaged = clip()
    if name == "astronaut-late":
        return gt, np.roll(damaged, 2, axis=0)
    if name == "astronaut-upside-down":
        return gt, np.ascontiguousarray(damaged[:, ::-1])
    return gt, damaged


def keypoints(gt: np.ndarray, pred: np.ndarray, face_region: str) -> tuple[list, list]:
    """The five keypoints csim_arcface aligns each frame by (dlib's landmarks, metrics.arcface.five_points)."""
    from metrics.arcface import five_points
    from metrics.landmarks import detect_face, detect_landmarks, landmarks_in_box

    gt_points, pred_points = [], []
    for g, p in zip(gt, pred):
        box, landmarks = detect_face(g)
        gt_points.append(five_points(landmarks).tolist())
        pred_lmk = landmarks_in_box(p, box) if face_region == "gt" else detect_landmarks(p)
        pred_points.append(five_points(pred_lmk).tolist())
    return gt_points, pred_points


def _random_arcface():
    """The model of the module docstring before its embedding statistics are set, and the embeddings
    of 64 random inputs the statistics are measured on (drawn here, so the generator's order stays)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.PReLU(16),
                          nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.PReLU(32),
                          nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(512, 512), nn.BatchNorm1d(512)).eval()
    with torch.no_grad():  # BatchNorm statistics away from the identity, so that they matter
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
        features = model[:-1](torch.rand(64, 3, 112, 112) * 2 - 1)
    return model, features


def embedding_statistics() -> dict[str, np.ndarray]:
    """The embedding's mean and variance over the random inputs, as measured on this CPU: the
    convolutions' float32 sums are ordered by the SIMD kernels torch picks for the CPU, so their last
    bits differ between machines (hence :data:`EMBEDDING_STATS` holds the ones the table was made with)."""
    _, features = _random_arcface()
    return {"mean": features.mean(0).numpy(), "var": features.var(0).numpy()}


def arcface_onnx(path: Path) -> Path:
    """The random ArcFace model of the module docstring, exported to ``path``; the last BatchNorm's
    statistics are the stored :data:`EMBEDDING_STATS` (embeddings centred on 0, so that the cosine of
    two faces is not dominated by what every input shares), every other tensor is drawn here."""
    import warnings

    import torch

    model, _ = _random_arcface()
    with torch.no_grad(), np.load(EMBEDDING_STATS) as stats:
        model[-1].running_mean.copy_(torch.from_numpy(stats["mean"]))
        model[-1].running_var.copy_(torch.from_numpy(stats["var"]))
        model[-1].weight.normal_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 3, 112, 112), str(path), input_names=["input.1"],
                          output_names=["embedding"], dynamic_axes={"input.1": {0: "batch"}}, dynamo=False)
    return path


def onnx_tensors(path: Path) -> dict[str, np.ndarray]:
    """The model's initializers, by name, as float32 arrays."""
    import onnx
    from onnx import numpy_helper

    return {t.name: np.ascontiguousarray(numpy_helper.to_array(t), dtype=np.float32)
            for t in onnx.load(str(path)).graph.initializer}


def onnx_digest(path: Path) -> str:
    """SHA-256 over the model's initializer names and values (independent of the exporter's other bytes)."""
    digest = hashlib.sha256()
    for name, values in sorted(onnx_tensors(path).items()):
        digest.update(name.encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- AKD (FAN landmarks)
AKD_FRAMES = 2  # FAN is slow on a CPU: two frames of each case
AKD_CASES = ("astronaut-gt", "astronaut-late")


def fan_weights(path: Path) -> Path:
    """A random ``2DFAN-4.pth.tar``: FAN(4) initialised after ``torch.manual_seed(SEED)`` (face_alignment's
    ``models.FAN`` and :class:`metrics.fan.FAN` create their layers in the same order), its state dict saved."""
    import torch

    from metrics.fan import FAN

    torch.manual_seed(SEED)
    torch.save(FAN(4).state_dict(), path)
    return path


def state_digest(state: dict) -> str:
    """SHA-256 over a state dict's names and float32 tensor bytes (the BatchNorm counters left out)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        if key.endswith("num_batches_tracked"):
            continue
        digest.update(key.encode())
        digest.update(state[key].detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def akd_boxes(gt: np.ndarray) -> list[tuple[int, int, int, int]]:
    """dlib's box of the ground truth's face in each frame: what akd (face_region="gt") gives FAN for both frames."""
    from metrics.landmarks import detect_face

    return [tuple(int(v) for v in detect_face(frame)[0]) for frame in gt]
