"""The inputs of the calibration table (``tests/calibration/``): stored files, and the recipe they were made by.

The table holds numbers that the published evaluation scripts produced, run outside the project
(``tests/calibration/run_scripts.py``), on inputs the project made: frames of the synthetic
dataset (``benchmark.datasets.synthetic.generate``, the frames ``cabench synth`` writes) cropped to
the case's size, and the ``degraded`` adapter's outputs of them. Those inputs are stored
(``tests/calibration/inputs/<case>.npz``, see :func:`save_inputs`) with their checksum in the
table's manifest: the scripts were run on exactly these files and the tests compare every
protocol on them.

Why stored and not regenerated: the renderer and the degradations are float code (Gaussian
blurs, resizes and warps in OpenCV, sin / cos / exp in NumPy), and both libraries pick their SIMD
kernels when they start, from the CPU they find (OpenCV's ``cv2.getCPUFeaturesLine()``; NumPy's
float64 sin / cos / exp use SVML kernels only on AVX-512). Two CPUs therefore round the same
float expression differently in the last bit, and after rounding to uint8 a few pixels can land
one grey level apart (moving those kernels' results by one ulp at random moved at most 1 grey level
in at most 5e-6 of the values): 7 of the 15 inputs made on an AVX-512 machine were not bit-equal to those made
on an AVX2-only one, with identical package versions (the scripts' numbers on them differed by up
to 4e-5). So bit-equality of regenerated frames is not a property any CPU can promise, and the
checksum that ties the tests to the table's own inputs can only hold for stored files. What does hold
on every CPU, and is tested, is that :func:`make_inputs` remakes the stored inputs up to that
rounding (:func:`rounding_differences`): at most one grey level apart in at most
:data:`MAX_DIFFERING` of the values, landmarks within :data:`LANDMARK_TOLERANCE` px. A change to
the renderer or to a degradation moves far more than that and is reported as such.

Also here: the random AlexNet trunk both sides load for LPIPS (numpy's generator, so it does not
depend on torch's initialisation code), and the analytic flows given to the warping-error script.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE = Path(__file__).parent / "calibration"
INPUTS = TABLE / "inputs"
# the bar for "the same input up to CPU rounding" (see the module docstring): values one grey level
# apart in at most this fraction of a case's gt and pred values, landmarks this close (px)
MAX_DIFFERING = 1e-3
LANDMARK_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Case:
    """One input: ``frames`` synthetic frames of side ``synth_size`` (``seed``), cropped to
    ``crop`` = (top, left, height, width), and the ``degradation`` of them as the prediction.

    ``gt_alpha`` / ``pred_alpha``: the frame is given as RGBA (colour as rendered or degraded, the
    matte as alpha); otherwise as RGB composited on white by the frame reader (uint8).
    """

    name: str
    synth_size: int
    seed: int
    crop: tuple[int, int, int, int]
    degradation: str
    strength: float
    gt_alpha: bool
    pred_alpha: bool
    frames: int = 2

    @property
    def height(self) -> int:
        return self.crop[2]

    @property
    def width(self) -> int:
        return self.crop[3]


def _variants(name, synth_size, seed, crop, degradation, strength, variants=("plain", "alpha"), frames=2):
    alpha = {"plain": (False, False), "alpha": (True, True), "gt-alpha": (True, False)}
    return [Case(f"{name}-{v}", synth_size, seed, crop, degradation, strength, *alpha[v], frames) for v in variants]


# width x height in the names; 176x144 and 256x320 are the non-square sizes (256x320 is one whose
# width is already IMavatar's 256, the case its script does not resize)
IMAGE_CASES: tuple[Case, ...] = (
    *_variants("176x144", 176, 11, (16, 0, 144, 176), "oversmooth", 1.5),
    *_variants("300x300", 300, 16, (0, 0, 300, 300), "flicker", 0.1),
    *_variants("256x256", 256, 13, (0, 0, 256, 256), "jitter", 1.5, ("plain", "alpha", "gt-alpha")),
    *_variants("512x512", 512, 14, (0, 0, 512, 512), "jitter", 2.5),
    *_variants("256x320", 320, 15, (0, 32, 320, 256), "oversmooth", 1.0),
)
# TecoGAN's metrics.py skips 2 frames at each end: 8 frames give the pairs (2,3), (3,4), (4,5)
TOF_CASES: tuple[Case, ...] = (
    *_variants("tof-176x144", 176, 21, (16, 0, 144, 176), "jitter", 1.0, ("plain",), frames=8),
    *_variants("tof-256x256", 256, 22, (0, 0, 256, 256), "jitter", 0.6, ("plain",), frames=8),
)
WARP_CASES: tuple[Case, ...] = (
    *_variants("warp-176x144", 176, 23, (16, 0, 144, 176), "flicker", 0.05, ("plain",), frames=3),
    *_variants("warp-300x300", 300, 24, (0, 0, 300, 300), "jitter", 1.0, ("plain",), frames=3),
)
CASES = {case.name: case for case in (*IMAGE_CASES, *TOF_CASES, *WARP_CASES)}


@dataclass
class Inputs:
    """A case's frames: uint8 (n,H,W,3|4) ground truth and prediction, landmarks (n,68,2) pixels."""

    gt: np.ndarray
    pred: np.ndarray
    landmarks: np.ndarray

    def checksum(self) -> str:
        digest = hashlib.sha256()
        for array in (self.gt, self.pred, self.landmarks):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def make_inputs(case: Case) -> Inputs:
    """The case's ground truth (synthetic frames) and prediction (the ``degraded`` adapter)."""
    from baselines.degradations import Degraded
    from benchmark.datasets.base import Sequence
    from benchmark.datasets.synthetic import generate
    from benchmark.io import ArrayFrames

    top, left, height, width = case.crop
    rgbas, landmarks = [], []
    for item in generate(case.frames, case.synth_size, case.seed):
        rgbas.append(item.rgba[top : top + height, left : left + width])
        landmarks.append(np.asarray(item.gt.landmarks, dtype=np.float64) - [left, top])
    rgba = np.stack(rgbas)
    sequence = Sequence(name=case.name, frames=ArrayFrames(rgba, name=case.name))
    ids = sequence.frame_ids
    truth = sequence.frames.read(ids)
    degraded = Degraded(case.degradation, case.strength, seed=case.seed).outputs(sequence).frames.read(ids)
    gt = rgba if case.gt_alpha else truth.rgb
    pred = degraded.rgb
    if case.pred_alpha:
        pred = np.concatenate([pred, np.rint(degraded.alpha * 255).astype(np.uint8)[..., None]], axis=-1)
    return Inputs(np.ascontiguousarray(gt), np.ascontiguousarray(pred), np.stack(landmarks))


def input_file(name: str) -> Path:
    """Where the case's stored inputs are."""
    return INPUTS / f"{name}.npz"


def png_entries(role: str, frames: np.ndarray) -> dict[str, np.ndarray]:
    """Frames (n,H,W,3|4) uint8 as ``{"role.0": PNG bytes, ...}``: lossless, and PNG's filters make the
    synthetic frames a third smaller than deflate on the raw arrays."""
    from PIL import Image

    entries = {}
    for index, frame in enumerate(frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG", compress_level=9)
        entries[f"{role}.{index}"] = np.frombuffer(buffer.getvalue(), np.uint8)
    return entries


def png_frames(stored, role: str, count: int) -> np.ndarray:
    """The ``count`` frames :func:`png_entries` stored under ``role``, (n,H,W,3|4) uint8."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(stored[f"{role}.{index}"].tobytes()))) for index in range(count)])


def save_inputs(name: str, inputs: Inputs) -> Path:
    """Store a case's inputs losslessly in one ``.npz``: the frames as PNG bytes (:func:`png_entries`),
    the landmarks as float64."""
    path = input_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, landmarks=inputs.landmarks, **png_entries("gt", inputs.gt), **png_entries("pred", inputs.pred))
    return path


def stored_inputs(name: str) -> Inputs:
    """The case's inputs as :func:`save_inputs` stored them."""
    with np.load(input_file(name)) as stored:
        count = len(stored["landmarks"])
        return Inputs(png_frames(stored, "gt", count), png_frames(stored, "pred", count), stored["landmarks"])


def frame_differences(role: str, made: np.ndarray, stored: np.ndarray) -> list[str]:
    """Why uint8 frames ``made`` are not ``stored`` up to CPU rounding (see :func:`rounding_differences`)."""
    if made.shape != stored.shape or made.dtype != stored.dtype:
        return [f"{role}: {made.dtype}{made.shape} made, {stored.dtype}{stored.shape} stored"]
    difference = np.abs(made.astype(np.float64) - stored.astype(np.float64))
    if difference.max() > 1 or (difference > 0).mean() > MAX_DIFFERING:
        return [f"{role}: up to {difference.max():.0f} grey levels apart in {(difference > 0).mean():.2%} of the values"]
    return []


def rounding_differences(made: Inputs, stored: Inputs) -> list[str]:
    """What keeps ``made`` from being ``stored`` up to CPU rounding (empty when it is): the same
    shapes and dtypes, frames at most one grey level apart in at most :data:`MAX_DIFFERING` of
    their values, landmarks within :data:`LANDMARK_TOLERANCE` px."""
    problems = frame_differences("gt", made.gt, stored.gt) + frame_differences("pred", made.pred, stored.pred)
    if made.landmarks.shape != stored.landmarks.shape:
        problems.append(f"landmarks: {made.landmarks.shape} made, {stored.landmarks.shape} stored")
    elif np.abs(made.landmarks - stored.landmarks).max() > LANDMARK_TOLERANCE:
        problems.append(f"landmarks up to {np.abs(made.landmarks - stored.landmarks).max():.3g} px apart")
    return problems


def alexnet_trunk(seed: int = 2024) -> dict[str, np.ndarray]:
    """A random AlexNet feature trunk (torchvision's ``features.*`` names and shapes), He-normal
    weights and small biases from ``numpy.random.default_rng(seed)``: both sides of the
    calibration load it, so LPIPS is compared with the same (untrained) network."""
    rng = np.random.default_rng(seed)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    trunk = {}
    for index, shape in shapes.items():
        fan_in = int(np.prod(shape[1:]))
        trunk[f"features.{index}.weight"] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        trunk[f"features.{index}.bias"] = (0.01 * rng.standard_normal(shape[0])).astype(np.float32)
    return trunk


def save_alexnet_trunk(path: Path, with_classifier: bool = False) -> Path:
    """Save :func:`alexnet_trunk` as a torch state dict; ``with_classifier`` adds torchvision's
    classifier layers (zeros), which torchvision's own loader needs (a strict load)."""
    import torch

    state = {key: torch.from_numpy(value) for key, value in alexnet_trunk().items()}
    if with_classifier:
        for index, shape in {1: (4096, 9216), 4: (4096, 4096), 6: (1000, 4096)}.items():
            state[f"classifier.{index}.weight"] = torch.zeros(shape)
            state[f"classifier.{index}.bias"] = torch.zeros(shape[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def analytic_flows(height: int, width: int, pair: int) -> tuple[np.ndarray, np.ndarray]:
    """Forward (t -> t+1) and backward (t+1 -> t) flows (H,W,2) float32 for pair ``pair``: a small
    rotation and translation with sinusoidal ripples, an elliptic region moving differently (motion
    boundaries), and a backward flow that is the forward's negative plus a 0.6-px ripple, so the
    forward-backward check flags part of the frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = width / 2, height / 2
    angle = 0.015 + 0.005 * pair
    u = (np.cos(angle) - 1) * (x - cx) - np.sin(angle) * (y - cy) + 1.3 + 0.8 * np.sin(2 * np.pi * y / 37 + pair)
    v = np.sin(angle) * (x - cx) + (np.cos(angle) - 1) * (y - cy) - 0.7 + 0.6 * np.cos(2 * np.pi * x / 53)
    inside = ((x - cx * 0.9) / (0.3 * width)) ** 2 + ((y - cy * 1.1) / (0.35 * height)) ** 2 < 1
    u = u + 2.5 * inside
    v = v - 1.5 * inside
    forward = np.stack([u, v], axis=-1)
    ripple = np.stack([np.sin(2 * np.pi * x / 29), np.cos(2 * np.pi * y / 31)], axis=-1)
    backward = -forward + 0.6 * ripple
    return forward.astype(np.float32), backward.astype(np.float32)
