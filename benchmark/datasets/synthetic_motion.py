"""Stationary synthetic motion (generator version ``v2``) with emotion classes, and a labelled
expression reference set for them (the MEAD-style database of :mod:`reference.emotion`).

Why: the first generator (``v1``, :func:`benchmark.datasets.synthetic.motion`) drifts. Its
sinusoids have periods longer than the sequence, so the test split (the last quarter) holds poses
and expressions the training frames never reached, and a per-subject model is asked to
extrapolate. A real talker (INSTA's videos) repeats its poses and expressions; v2 does too.

v2, per seed: a loop of ``LOOP_SECONDS`` (1.0-1.5 s, so a 64-frame sequence at 25 fps has 48
training frames covering 1.3-1.9 loops). Over a loop:

- head yaw, pitch, roll: first and second harmonics of the loop with random phases, within
  ``POSE_AMPLITUDE_DEG`` (as v1's bounds), plus a mean-reverting (Ornstein-Uhlenbeck) wobble of
  ``WOBBLE`` times the amplitude so no frame repeats exactly;
- the emotion: the talker goes through the classes of ``EMOTIONS`` (each once, random order,
  a third of the loop each, smooth hand-overs); a frame's label is the class of largest weight;
- the mouth: each class's jaw baseline plus talking at an integer number of cycles per loop;
  the smile is the classes' weighted smile; one blink per loop; a small expression wobble.

The labelled reference set (:func:`emotion_reference`) draws clips of each class alone (the class's
expression with its own talking rate, blinks and wobble, from another random stream), as MEAD's
clips are recorded one emotion at a time. :mod:`reference.emotion` labels a frame with the class of
its most cosine-similar reference frame, the paper's selection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.datasets.synthetic_face import EXPRESSION_NAMES, FaceParams
from metrics.errors import CabenchError

MOTIONS = ("v1", "v2")
"""Generator versions: v1 drifts (the calibration inputs' and the first checkpoint's), v2 recurs."""
EXPRESSION_DIM = 100
POSE_AMPLITUDE_DEG = (15.0, 8.0, 6.0)  # yaw, pitch, roll: v1's bounds
LOOP_SECONDS = (1.0, 1.5)
WOBBLE = 0.06          # OU wobble of pose, as a fraction of the amplitude
EXPRESSION_WOBBLE = 0.02
WOBBLE_SECONDS = 0.2   # OU correlation time
# class -> (smile, jaw baseline, jaw talking amplitude); cosine-separable in (jaw, smile)
EMOTIONS = {
    "neutral": (0.12, 0.15, 0.40),
    "happy": (0.85, 0.10, 0.35),
    "surprised": (0.00, 0.65, 0.30),
}
HAND_OVER = 6.0        # von Mises concentration of each class's weight over the loop phase


def _ou(rng: np.random.Generator, frames: int, fps: float, std: float, dims: int) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck noise (frames, dims) of standard deviation ``std``."""
    decay = np.exp(-1.0 / (fps * WOBBLE_SECONDS))
    out = np.empty((frames, dims))
    out[0] = std * rng.standard_normal(dims)
    for i in range(1, frames):
        out[i] = decay * out[i - 1] + std * np.sqrt(1 - decay**2) * rng.standard_normal(dims)
    return out


def _blink(phase_seconds: np.ndarray, at: float, loop: float) -> np.ndarray:
    """A 60 ms blink at ``at`` seconds into each loop (wrapped, so it recurs every loop)."""
    d = (phase_seconds - at + loop / 2) % loop - loop / 2
    return np.exp(-0.5 * (d / 0.06) ** 2)


def _params(yaw, pitch, roll, jaw, smile, blink) -> list[FaceParams]:
    clip = lambda v: float(np.clip(v, 0.0, 1.0))  # noqa: E731
    return [FaceParams(yaw=float(a), pitch=float(b), roll=float(c), jaw_open=clip(j), smile=clip(s),
                       blink_left=clip(k), blink_right=clip(k))
            for a, b, c, j, s, k in zip(yaw, pitch, roll, jaw, smile, blink)]


def stationary_motion(frames: int, fps: float = 25.0, seed: int = 0) -> tuple[list[FaceParams], list[str]]:
    """v2: per-frame face parameters and emotion labels (see the module docstring)."""
    if frames < 1:
        raise CabenchError(f"--frames must be at least 1, got {frames}")
    rng = np.random.default_rng([seed, 2])
    t = np.arange(frames) / fps
    loop = rng.uniform(*LOOP_SECONDS)
    phase = 2 * np.pi * t / loop
    angles = []
    for amplitude in POSE_AMPLITUDE_DEG:
        weights = rng.uniform(0.4, 0.6, size=2)
        weights = (1 - WOBBLE * 2) * weights / weights.sum()  # harmonics + wobble stay within the bound (2 sd)
        phases = rng.uniform(0, 2 * np.pi, size=2)
        curve = weights[0] * np.sin(phase + phases[0]) + weights[1] * np.sin(2 * phase + phases[1])
        angles.append(np.deg2rad(amplitude) * curve)
    wobble = _ou(rng, frames, fps, WOBBLE, 3) * np.deg2rad(POSE_AMPLITUDE_DEG)
    names = list(EMOTIONS)
    order = rng.permutation(len(names))
    centres = (np.arange(len(names)) + 0.5) / len(names) * 2 * np.pi + rng.uniform(0, 2 * np.pi)
    logits = np.stack([HAND_OVER * np.cos(phase - centres[k]) for k in range(len(names))], axis=1)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    table = np.array([EMOTIONS[names[order[k]]] for k in range(len(names))])  # (classes, 3), by centre
    smile, jaw_base, jaw_amp = (weights @ table).T
    cycles = int(rng.integers(2, 4))
    talk = 0.5 * (1 - np.cos(cycles * phase + rng.uniform(0, 2 * np.pi)))
    expr_wobble = _ou(rng, frames, fps, EXPRESSION_WOBBLE, 2)
    blink = _blink(t % loop, rng.uniform(0, loop), loop)
    params = _params(angles[0] + wobble[:, 0], angles[1] + wobble[:, 1], angles[2] + wobble[:, 2],
                     jaw_base + jaw_amp * talk + expr_wobble[:, 0], smile + expr_wobble[:, 1], blink)
    labels = [names[order[k]] for k in weights.argmax(axis=1)]
    return params, labels


def expression_vector(params: FaceParams) -> np.ndarray:
    """The 100-d FLAME-style expression vector written for a frame (the named parameters first, rest 0)."""
    out = np.zeros(EXPRESSION_DIM)
    out[: len(EXPRESSION_NAMES)] = params.expression()
    return out


def emotion_reference(seed: int = 0, clips: int = 3, frames: int = 30, fps: float = 25.0) -> dict[str, list[np.ndarray]]:
    """The labelled reference set: ``{label: [clip (frames, 100) float32, ...]}`` (see the module docstring)."""
    rng = np.random.default_rng([seed, 3])
    t = np.arange(frames) / fps
    out: dict[str, list[np.ndarray]] = {}
    for label, (smile, jaw_base, jaw_amp) in EMOTIONS.items():
        for _ in range(clips):
            rate = rng.uniform(1.5, 3.5)
            talk = 0.5 * (1 - np.cos(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
            wobble = _ou(rng, frames, fps, EXPRESSION_WOBBLE, 2)
            blink = _blink(t, rng.uniform(0, 1.2), 1.2)
            zeros = np.zeros(frames)
            params = _params(zeros, zeros, zeros, jaw_base + jaw_amp * talk + wobble[:, 0], smile + wobble[:, 1], blink)
            out.setdefault(label, []).append(np.stack([expression_vector(p) for p in params]).astype(np.float32))
    return out


def write_emotion_reference(folder: str | Path, seed: int = 0) -> Path:
    """Write :func:`emotion_reference` as ``folder/<label>/clip<k>.npy`` (the layout
    :class:`reference.emotion.ExpressionDatabase` reads); returns the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CabenchError(f"{folder}: exists and is not a folder")
    for label, arrays in emotion_reference(seed).items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for k, array in enumerate(arrays):
            np.save(folder / label / f"clip{k}.npy", array)
    return folder
