"""Inputs of the LSE calibration, regenerated from a recipe: synthetic talking sequences with audio, dlib face
boxes, and a random-weight ``syncnet_v2.model``.

The reference (``joonson/syncnet_python``, and Wav2Lip's ``SyncNetInstance_calc_scores.py`` for the
whole-frame case) is run on these by ``tests/calibration/run_syncnet.py`` outside the project; the
numbers it gave are ``tests/calibration/lipsync.csv``, compared by ``tests/test_calibration_lipsync.py``
on the inputs stored with the table (:data:`INPUTS`; the recipe is checked to remake them up to CPU rounding).

The weights are SyncNet initialised by PyTorch after ``torch.manual_seed(SEED)``: syncnet_python's
``S`` and :class:`metrics.syncnet.SyncNet` create their layers in the same order, so both draw the
same numbers; the table records the SHA-256 of the tensors the reference saved, and the test checks
its regenerated weights against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0
FRAMES = 20
SIZE = 128
# the inputs the table was made from, stored (synthetic frames are float-rendered: regenerated on another
# CPU they can differ by a grey level here and there, see calibration_recipe)
INPUTS = Path(__file__).parent / "calibration" / "inputs" / "lipsync"


@dataclass(frozen=True)
class LipCase:
    name: str
    seed: int
    shift: int       # audio delayed by this many frames (0: in sync)
    crop: str        # "syncnet" (run_pipeline's crop of dlib boxes) or "frame" (Wav2Lip's LRS scoring)


CASES = {c.name: c for c in (
    LipCase("talk-sync", 5, 0, "syncnet"),
    LipCase("talk-shift3", 5, 3, "syncnet"),
    LipCase("talk-frame", 6, 0, "frame"),
)}


def syncnet_weights(path: Path) -> Path:
    """A random ``syncnet_v2.model`` (see the module docstring), written with torch.save of the state dict."""
    import torch

    from metrics.syncnet import SyncNet

    torch.manual_seed(SEED)
    torch.save(SyncNet().state_dict(), path)
    return path


def tensor_digest(state: dict) -> str:
    """SHA-256 over the state dict's names and float32 tensor bytes (file-format independent)."""
    from arcface_recipe import state_digest

    return state_digest(state)


def make_case(case: LipCase, work: Path):
    """Write the case's sequence (``work/<name>/astronaut``) and return (sequence, audio aligned to frame 0)."""
    from benchmark.datasets import open_dataset
    from benchmark.datasets.synthetic import write_sequence

    root = write_sequence(work / case.name, frames=FRAMES, size=SIZE, seed=case.seed, progress=False,
                          audio=True, audio_shift=case.shift, overwrite=True)
    sequence = open_dataset(root).sequences[0]
    if case.shift:
        sequence.audio_file = root / "audio_shifted.wav"
    return sequence, sequence.audio()


def save_case(name: str, frames: np.ndarray, audio) -> Path:
    """Store a case's frames (PNG bytes, see calibration_recipe.png_entries) and its audio aligned to frame 0."""
    from calibration_recipe import png_entries

    INPUTS.mkdir(parents=True, exist_ok=True)
    np.savez(INPUTS / f"{name}.npz", samples=audio.samples, rate=audio.rate, fps=audio.fps, **png_entries("frame", frames))
    return INPUTS / f"{name}.npz"


def stored_case(name: str):
    """(frames (T,H,W,3) uint8, audio aligned to frame 0) as :func:`save_case` stored them."""
    from calibration_recipe import png_frames

    from metrics.audio import Audio

    with np.load(INPUTS / f"{name}.npz") as stored:
        frames = png_frames(stored, "frame", sum(key.startswith("frame.") for key in stored.files))
        return frames, Audio(stored["samples"], int(stored["rate"]), float(stored["fps"]))


def frames_rgb(sequence) -> np.ndarray:
    """The sequence's RGBA frames composited on white and rounded to (T,H,W,3) uint8 RGB: the opaque
    frames given to the metric as the prediction and to the reference as its video frames."""
    import cv2

    out = []
    for frame in sequence.frame_ids:
        path = sequence.root / "images" / f"{frame:05d}.png"
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float64)
        alpha = bgra[..., 3:] / 255.0
        rgb = bgra[..., 2::-1] * alpha + 255.0 * (1.0 - alpha)
        out.append(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    return np.stack(out)


def dlib_boxes(frames: np.ndarray) -> list[tuple[float, float, float, float] | None]:
    """dlib's box of the most confident face in each frame (what lse_* with face_region="detect" uses)."""
    from metrics.landmarks import detect_face

    return [None if face is None else tuple(map(float, face[0])) for face in map(detect_face, frames)]
