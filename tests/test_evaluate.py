"""`benchmark.evaluate`: masks, option routing, streaming rows, frame-id alignment, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import mean_squared_error

from benchmark import evaluate
from benchmark.io import ArrayFrames
from metrics.errors import CabenchError


@pytest.fixture(scope="module")
def sequence(photos):
    gt = np.stack([photos["chelsea"][10 * i : 10 * i + 48, 100:164] for i in range(5)])
    pred = np.clip(gt.astype(int) + np.random.default_rng(0).integers(-30, 31, gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


def test_masked_evaluation_uses_only_mask_pixels(sequence):
    pred, gt = sequence
    mask = np.zeros(gt.shape[:3], np.float32)
    mask[:, 10:30, 20:50] = 1
    result = evaluate(pred=pred, gt=gt, metrics=("l2",), mask=mask, batch_size=2, progress=False).frames
    for i, value in enumerate(result["l2"]):
        inside = mask[i].astype(bool)
        assert value == pytest.approx(mean_squared_error(gt[i][inside] / 255, pred[i][inside] / 255), abs=1e-6)


def test_rows_stream_per_batch_and_are_deterministic(sequence):
    pred, gt = sequence
    chunks = []
    first = evaluate(pred=pred, gt=gt, metrics="l2,psnr,ssim", batch_size=2, progress=False, on_rows=chunks.append).frames
    assert [len(c) for c in chunks] == [2, 2, 1]
    second = evaluate(pred=pred, gt=gt, metrics="l2,psnr,ssim", batch_size=5, progress=False).frames
    np.testing.assert_array_equal(first[["l2", "psnr", "ssim"]].to_numpy(), second[["l2", "psnr", "ssim"]].to_numpy())
    assert list(first.columns) == ["frame", "protocol", "l2", "psnr", "ssim"]


def test_frames_are_matched_by_id_not_position(sequence):
    pred, gt = sequence
    shuffled = ArrayFrames(pred[::-1], frame_ids=[4, 3, 2, 1, 0], name="reversed")
    by_id = evaluate(pred=shuffled, gt=gt, metrics=("l2",), progress=False).frames
    plain = evaluate(pred=pred, gt=gt, metrics=("l2",), progress=False).frames
    np.testing.assert_array_equal(by_id["l2"].to_numpy(), plain["l2"].to_numpy())


def test_options_go_to_the_metrics_that_take_them(sequence, torch_home):
    pred, gt = sequence
    with pytest.raises(CabenchError, match="option net is not used by any of the metrics l2"):
        evaluate(pred=pred, gt=gt, metrics=("l2",), net="vgg", progress=False)
    result = evaluate(pred=pred, gt=gt, metrics=("l2", "lpips"), net="vgg", progress=False)
    assert "vgg16-397923af.pth" in result.missing["lpips"]
    with pytest.raises(CabenchError, match="--batch-size must be at least 1"):
        evaluate(pred=pred, gt=gt, batch_size=0, progress=False)


def test_prediction_and_ground_truth_are_passed_by_name_only(sequence):
    """A swapped positional call once went unnoticed (warp_error 2.1e-4 instead of 4.8e-5): no positional call exists."""
    pred, gt = sequence
    with pytest.raises(TypeError, match="positional"):
        evaluate(pred, gt, metrics=("l2",), progress=False)
    named = evaluate(gt=gt, pred=pred, metrics=("l2",), progress=False).frames
    assert named["l2"].to_numpy() == pytest.approx([mean_squared_error(g / 255, p / 255) for p, g in zip(pred, gt)])


def test_every_offline_metric_is_independent_of_the_batch_size():
    """Temporal metrics carry their state across batches and face metrics work per frame, so the
    batch size (the default changed from 16 to 8 for speed) changes a value only through the float32
    rounding of batched torch reductions (measured: at most 2e-9, in l1, l2 and csim)."""
    from benchmark.datasets.synthetic import generate

    gt = np.stack([item.rgba[..., :3] for item in generate(10, 128, 3)])
    pred = np.roll(gt, 1, axis=2)
    pred[1::3] = np.clip(pred[1::3].astype(int) + 12, 0, 255).astype(np.uint8)
    names = ("l1", "l2", "psnr", "ssim", "flow_gap", "tof", "warp_error", "motion_inheritance", "lmk_pose",
             "lmk_expr", "lmd", "mlmd", "csim")
    tables = [evaluate(pred=pred, gt=gt, metrics=names, batch_size=size, progress=False).frames for size in (3, 8, 10)]
    columns = [c for c in tables[0].columns if c not in ("frame", "protocol")]
    assert tables[0][columns].notna().any().all()  # every metric produced values
    for other in tables[1:]:
        np.testing.assert_allclose(other[columns].to_numpy(float), tables[0][columns].to_numpy(float), rtol=1e-7,
                                   atol=1e-8)
