"""The inputs of the set-level calibration table (``tests/calibration/set_metrics.csv``), from a recipe.

Each case is a set of real frames (scikit-image's photos, or frames of the project's synthetic
dataset) and a degraded copy of it (the ``degraded`` adapter), at one size (several, two of them
non-square). The reference implementations ran on these frames written as PNG files
(``tests/calibration/set_metrics_inputs.py`` writes them; ``run_set_references.py`` ran pytorch-fid,
torch-fidelity's KID and ``cpbd`` on them, each in its own environment); the tests regenerate the same
frames and compare.

No Inception weights can be downloaded here, so both sides load one random-weight file in
pytorch-fid's format: convolution and classifier weights from numpy's generator (He-normal, so
they do not depend on torch's initialisation code), batch-norm scale 1 and shift 0, and batch-norm
running statistics measured by pytorch-fid's own network on real photos (train mode, float64,
stored in ``tests/calibration/inception_bn_stats.npz``), so that every layer sees normalised
activations and the features do not collapse.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE = Path(__file__).parent / "calibration"
BN_STATS = TABLE / "inception_bn_stats.npz"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "hubble_deep_field", "colorwheel")


@dataclass(frozen=True)
class SetCase:
    """``frames`` frames of ``width`` x ``height`` from ``source`` (``photos``: random crops of
    scikit-image's photos; ``synth``: the synthetic dataset's frames, centre-cropped), and the
    ``degradation`` of them (strength ``strength``) as the generated set."""

    name: str
    source: str
    width: int
    height: int
    frames: int
    seed: int
    degradation: str
    strength: float


SET_CASES: tuple[SetCase, ...] = (
    SetCase("photos-256x256", "photos", 256, 256, 24, 31, "oversmooth", 1.5),
    SetCase("photos-320x200", "photos", 320, 200, 24, 32, "flicker", 0.15),
    SetCase("synth-176x144", "synth", 176, 144, 24, 33, "jitter", 2.0),
    SetCase("synth-256x320", "synth", 256, 320, 20, 34, "oversmooth", 2.5),
)
CASES = {case.name: case for case in SET_CASES}


def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    return image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)


def photo_crops(count: int, width: int, height: int, seed: int) -> np.ndarray:
    """``count`` crops (count,height,width,3) uint8 of scikit-image's photos, cycling through
    :data:`PHOTOS`, at positions drawn from ``numpy.random.default_rng(seed)`` (a photo smaller
    than the crop is tiled by edge replication first)."""
    rng = np.random.default_rng(seed)
    crops = []
    for index in range(count):
        photo = _photo(PHOTOS[index % len(PHOTOS)])
        pad_h, pad_w = max(0, height - photo.shape[0]), max(0, width - photo.shape[1])
        if pad_h or pad_w:
            photo = np.pad(photo, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        top = int(rng.integers(0, photo.shape[0] - height + 1))
        left = int(rng.integers(0, photo.shape[1] - width + 1))
        crops.append(photo[top : top + height, left : left + width])
    return np.ascontiguousarray(np.stack(crops))


def synth_frames(count: int, width: int, height: int, seed: int) -> np.ndarray:
    """``count`` synthetic frames (composited on white, as the frame reader gives them), centre-cropped."""
    from benchmark.datasets.synthetic import generate

    side = max(width, height)
    frames = []
    for item in generate(count, side, seed):
        rgba = item.rgba.astype(np.float64)
        alpha = rgba[..., 3:] / 255.0
        rgb = np.rint(rgba[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
        top, left = (side - height) // 2, (side - width) // 2
        frames.append(rgb[top : top + height, left : left + width])
    return np.ascontiguousarray(np.stack(frames))


def make_set(case: SetCase) -> tuple[np.ndarray, np.ndarray]:
    """The case's real set and generated set, uint8 (n,H,W,3) each."""
    from baselines.degradations import Degraded
    from benchmark.datasets.base import Sequence
    from benchmark.io import ArrayFrames

    real = (photo_crops if case.source == "photos" else synth_frames)(case.frames, case.width, case.height, case.seed)
    sequence = Sequence(name=case.name, frames=ArrayFrames(real, name=case.name))
    degraded = Degraded(case.degradation, case.strength, seed=case.seed).outputs(sequence).frames
    fake = degraded.read(sequence.frame_ids).rgb
    if fake.dtype != np.uint8:  # the flicker gain of frames without a matte stays float: rounded as a PNG stores it
        fake = np.rint(np.clip(fake, 0, 255)).astype(np.uint8)
    return real, np.ascontiguousarray(fake)


def bn_frames() -> np.ndarray:
    """The real photos the batch-norm statistics are measured on: 16 crops of 299 x 299."""
    return photo_crops(16, 299, 299, seed=2025)


def inception_weights(shapes: dict[str, tuple[int, ...]], seed: int = 2024) -> dict[str, np.ndarray]:
    """The random weights (float32) for every tensor named in ``shapes`` except the batch-norm
    running statistics: convolutions He-normal (std sqrt(2 / fan_in)), classifier N(0, 1/2048),
    batch-norm scale 1 and shift 0, in the order of ``shapes``."""
    rng = np.random.default_rng(seed)
    weights = {}
    for key, shape in shapes.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        if key.endswith("bn.weight"):
            weights[key] = np.ones(shape, np.float32)
        elif key.endswith("bn.bias") or key == "fc.bias":
            weights[key] = np.zeros(shape, np.float32)
        else:
            fan_in = int(np.prod(shape[1:]))
            weights[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return weights


def inception_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The whole random state: :func:`inception_weights` plus the stored batch-norm statistics."""
    state = inception_weights(shapes)
    with np.load(BN_STATS) as stats:
        state.update({key: stats[key] for key in stats.files})
    return state


def state_checksum(state: dict[str, np.ndarray]) -> str:
    """SHA-256 over the tensors' names, shapes and float32 bytes, in sorted name order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        value = np.ascontiguousarray(state[key], dtype=np.float32)
        digest.update(f"{key}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
