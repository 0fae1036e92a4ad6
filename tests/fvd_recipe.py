"""The FVD calibration's inputs and random I3D weights (``tests/calibration/fvd.json``), from a recipe.

Inputs: the synthetic dataset's frames (``cabench synth --motion v2``) as the real clips and a
degraded copy (the ``degraded`` adapter) as the generated ones, at 64 x 64 and, centre-cropped, at
80 x 48 (non-square): ``tests/calibration/run_fvd_references.py prepare`` made them and stored them in
``tests/calibration/inputs/fvd/*.npz`` (uint8, small; the renderer's floating point could differ
between CPUs, so the stored bytes are what both sides read).

Weights: no I3D file can be downloaded here, so both sides load one random-weight file written by
VideoGPT's own ``InceptionI3d`` with ``torch.save(state_dict)``: convolutions He-normal from numpy's
generator (std sqrt(2 / fan_in)), the classifier N(0, 1 / fan_in) with bias 0, batch-norm scale 1
and shift 0, and batch-norm running statistics measured by VideoGPT's network itself on the real
clips (train mode, momentum None, stored in ``tests/calibration/i3d_bn_stats.npz``), so every layer
sees normalised activations and the logits do not collapse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CALIBRATION = Path(__file__).parent / "calibration"
INPUTS = CALIBRATION / "inputs" / "fvd"
BN_STATS = CALIBRATION / "i3d_bn_stats.npz"
CASES = ("synth-64x64", "synth-80x48")
SEED = 2026


def load_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The case's real and generated clips, uint8 (n,16,H,W,3) each."""
    with np.load(INPUTS / f"{name}.npz") as data:
        return data["real"], data["fake"]


def i3d_weights(shapes: dict[str, tuple[int, ...]], seed: int = SEED) -> dict[str, np.ndarray]:
    """Random float32 weights for every tensor in ``shapes`` but the batch-norm statistics (module docstring),
    drawn in the order of ``shapes``."""
    rng = np.random.default_rng(seed)
    weights = {}
    for key, shape in shapes.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        if key.endswith("bn.weight"):
            weights[key] = np.ones(shape, np.float32)
        elif key.endswith(("bn.bias", "conv3d.bias")):
            weights[key] = np.zeros(shape, np.float32)
        else:
            fan_in = int(np.prod(shape[1:]))
            gain = 1.0 if key.startswith("logits.") else 2.0
            weights[key] = (rng.standard_normal(shape) * np.sqrt(gain / fan_in)).astype(np.float32)
    return weights


def project_shapes() -> dict[str, tuple[int, ...]]:
    """The names and shapes of the project's I3D (VideoGPT's names), in its order."""
    import torch

    from metrics.i3d import I3D

    with torch.device("meta"):
        state = I3D().state_dict()
    return {key: tuple(value.shape) for key, value in state.items() if not key.endswith("num_batches_tracked")}


def i3d_state() -> dict[str, np.ndarray]:
    """The whole random state: :func:`i3d_weights` plus the stored batch-norm statistics."""
    state = i3d_weights(project_shapes())
    with np.load(BN_STATS) as stats:
        state.update({key: stats[key] for key in stats.files})
    return state


def write_weights(path: Path) -> Path:
    """The random state as a state dict file (``torch.save``), as VideoGPT's file is."""
    import torch

    torch.save({key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in i3d_state().items()}, path)
    return path
