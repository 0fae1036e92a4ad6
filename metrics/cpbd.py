"""CPBD sharpness (Narvekar & Karam 2011, "cumulative probability of blur detection"), per frame.

Computed as the ``cpbd`` package (``cpbd.compute``, the code SadTalker's evaluation and its
successors call; ``cpbd-py312`` is the same code for current SciPy) computes it, vectorised:

- the frame's 8-bit grayscale as that package's command line reads an image
  (``imread(path, mode='L')``: PIL's ITU-R 601 ``convert('L')``), as float64;
- edges for the block decision from scikit-image's ``canny`` (default sigma 1); edge pixels for the
  width measurement from a Sobel filter (vertical derivative, kernel normalised to unit absolute
  sum, ``scipy.ndimage.convolve`` with reflected borders), squared, thresholded at twice the root of
  its mean, and thinned (a pixel greater than both horizontal or both vertical neighbours);
- Marziliano edge widths at those pixels whose gradient angle (``atan2`` of ``numpy.gradient``,
  0 where the horizontal gradient is 0, quantised to 45 degrees) is 0 or ±180: steps left and
  right while the intensity keeps falling (rising), at most 101 each, width = left + right;
- 64 x 64 blocks (whole blocks only) with more than 0.2 % Canny edge pixels; just-noticeable width
  5 for a block contrast (max - min) up to 50, else 3; P(blur) = 1 - exp(-|w / w_JNB|^3.6) per
  edge, rounded to a percent; CPBD = the share of edges with P(blur) below 0.64 (0 without edges).

Higher is sharper; the value lies in [0, 1]. A frame smaller than one block has no blocks: 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from metrics.registry import Batch, Evaluator, MetricSpec, register

THRESHOLD = 0.002
BETA = 3.6
BLOCK = 64
MAX_STEPS = 100


def grayscale(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H,W,3) -> uint8 (H,W), exactly as PIL's ``convert('L')`` (the ``cpbd`` command line's read)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))


def _sobel_edges(image: np.ndarray) -> np.ndarray:
    from scipy.ndimage import convolve

    kernel = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 4.0  # scikit-image's HSOBEL_WEIGHTS
    kernel /= np.sum(np.abs(kernel))
    strength = np.square(convolve(image, kernel.T))
    threshold = 2 * np.sqrt(np.mean(strength))
    strength[strength <= threshold] = 0
    zero_col, zero_row = np.zeros((strength.shape[0], 1)), np.zeros((1, strength.shape[1]))
    across = (strength > np.c_[zero_col, strength[:, :-1]]) & (strength > np.c_[strength[:, 1:], zero_col])
    down = (strength > np.r_[zero_row, strength[:-1, :]]) & (strength > np.r_[strength[1:, :], zero_row])
    return across | down


def _runs(steps: np.ndarray, leftward: bool) -> np.ndarray:
    """For each column j, how many consecutive True values of ``steps`` start at j going left
    (``leftward``) or right."""
    runs = np.zeros(steps.shape, np.int64)
    columns = range(steps.shape[1]) if leftward else range(steps.shape[1] - 1, -1, -1)
    previous = np.zeros(steps.shape[0], np.int64)
    for j in columns:
        previous = np.where(steps[:, j], previous + 1, 0)
        runs[:, j] = previous
    return runs


def _edge_widths(edges: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Marziliano widths at the thinned Sobel edges (0 elsewhere), as ``cpbd.marziliano_method``."""
    height, width = image.shape
    widths = np.zeros(image.shape)
    gradient_y, gradient_x = np.gradient(image)
    angles = np.zeros(image.shape)
    nonzero = gradient_x != 0
    angles[nonzero] = np.arctan2(gradient_y[nonzero], gradient_x[nonzero]) * (180 / math.pi)
    if not np.any(angles):
        return widths
    quantised = 45 * np.round(angles / 45)
    # outward step from inner pixel j: to j - 1 (left) or j + 1 (right); False where it leaves the image
    to_left = np.zeros(image.shape)
    to_left[:, 1:] = image[:, :-1] - image[:, 1:]
    to_right = np.zeros(image.shape)
    to_right[:, :-1] = image[:, 1:] - image[:, :-1]
    inside_left = np.ones(image.shape, bool)
    inside_left[:, 0] = False
    inside_right = np.ones(image.shape, bool)
    inside_right[:, -1] = False
    interior = np.zeros(image.shape, bool)
    interior[1:-1, 1:-1] = True
    for angle, falls_left, rises_right in ((0, to_left < 0, to_right > 0), (180, to_left > 0, to_right < 0)):
        selected = edges & interior & (np.abs(quantised) == angle)
        if not selected.any():
            continue
        left = np.minimum(_runs(falls_left & inside_left, leftward=True), MAX_STEPS)
        right = np.minimum(_runs(rises_right & inside_right, leftward=False), MAX_STEPS)
        rows, cols = np.nonzero(selected)
        widths[rows, cols] = (left[rows, cols - 1] + 1) + (right[rows, cols + 1] + 1)
    return widths


def cpbd(gray: np.ndarray) -> float:
    """CPBD of one 8-bit grayscale frame (H,W) (see the module docstring)."""
    from skimage.feature import canny

    image = np.asarray(gray).astype(np.float64)
    canny_edges = canny(image)
    widths = _edge_widths(_sobel_edges(image), image)
    histogram = np.zeros(101)
    total = 0
    for top in range(0, (image.shape[0] // BLOCK) * BLOCK, BLOCK):
        for left in range(0, (image.shape[1] // BLOCK) * BLOCK, BLOCK):
            rows, cols = slice(top, top + BLOCK), slice(left, left + BLOCK)
            if np.count_nonzero(canny_edges[rows, cols]) <= BLOCK * BLOCK * THRESHOLD:
                continue
            block = widths[rows, cols]
            block = block[block != 0]
            contrast = int(np.max(image[rows, cols]) - np.min(image[rows, cols]))
            jnb = 5.0 if contrast <= 50 else 3.0
            probability = 1 - np.exp(-np.abs(block / jnb) ** BETA)
            np.add.at(histogram, np.round(probability * 100).astype(np.int64), 1)
            total += len(block)
    if total > 0:
        histogram = histogram / total
    return float(np.sum(histogram[:64]))


class CPBDEvaluator(Evaluator):
    """CPBD of every generated frame (``cpbd``) and of its ground truth (``cpbd_gt``, computed once)."""

    columns = ("cpbd", "cpbd_gt")

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        pred = batch.map(lambda frame: cpbd(grayscale(frame)), list(batch.uint8("pred")))
        gt_frames = batch.uint8("gt")

        def compute(indices: list[int]) -> list[dict[str, np.ndarray]]:
            values = batch.map(lambda i: cpbd(grayscale(gt_frames[i])), indices)
            return [{"cpbd": np.float64(value)} for value in values]

        truth = batch.truth.get("cpbd", {"version": 1}, [[key] for key in batch.gt_keys], compute)
        return {"cpbd": np.asarray(pred, np.float64), "cpbd_gt": np.array([float(t["cpbd"]) for t in truth])}


def _factory(device: torch.device, protocol: Any = None, **options: Any) -> Evaluator:
    return CPBDEvaluator()


register(MetricSpec("cpbd", higher_is_better=True, unit="",
                    description="CPBD sharpness (Narvekar & Karam 2011) of each generated frame, as the cpbd package",
                    factory=_factory, columns=CPBDEvaluator.columns, reference_columns=("cpbd_gt",),
                    paper_format=".3f", value_range=(0.0, 1.0)))
