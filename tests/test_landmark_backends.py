"""One landmark stack behind lmd, mlmd and akd: ``landmarks = "dlib" | "fan"``, FAN's points from metrics.fan,
the ground truth's computed once per frame for every metric that uses them (with the recipe's random
``2DFAN-4.pth.tar``; akd's equality with pose-evaluation is tests/test_calibration_akd.py)."""

from __future__ import annotations

import numpy as np
import pytest
from arcface_recipe import akd_boxes, case_frames, fan_weights

from benchmark import evaluate
from metrics import fan as fan_module

FRAMES = 1


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return fan_weights(tmp_path_factory.mktemp("fan") / "2DFAN-4.pth.tar")


@pytest.fixture(scope="module")
def frames():
    gt, damaged = case_frames("astronaut-gt")
    return gt[:FRAMES], damaged[:FRAMES]


def test_lmd_and_akd_share_fan_landmarks_equal_a_hand_computation_and_are_zero_on_the_frame_itself(
        weights, frames, monkeypatch, tmp_path):
    gt, pred = frames
    model = fan_module.load_fan(weights)
    boxes = akd_boxes(gt)  # the ground truth's dlib box: where FAN looks in both frames (face_region="gt")
    gt_points = [fan_module.fan_landmarks(model, g, box) for g, box in zip(gt, boxes)]
    pred_points = [fan_module.fan_landmarks(model, p, box) for p, box in zip(pred, boxes)]
    expected_lmd = [np.linalg.norm(p - g, axis=1).mean() / np.linalg.norm(g[45] - g[36])
                    for p, g in zip(pred_points, gt_points)]
    expected_akd = [np.abs(p - g).mean() for p, g in zip(pred_points, gt_points)]
    assert min(expected_lmd) > 0  # the damaged copy moves FAN's points

    calls = []
    original = fan_module.fan_landmarks
    monkeypatch.setattr(fan_module, "fan_landmarks", lambda *a, **k: calls.append(1) or original(*a, **k))
    options = {"landmarks": "fan", "fan_weights": str(weights), "truth_cache": tmp_path / "truth", "progress": False}
    result = evaluate(pred=pred, gt=gt, metrics="lmd,akd", **options)
    assert not result.missing
    np.testing.assert_allclose(result.frames["lmd"], expected_lmd, rtol=1e-12)
    np.testing.assert_allclose(result.frames["akd"], expected_akd, rtol=1e-12)
    assert len(calls) == 2 * FRAMES  # FAN once per frame of each side, for both metrics
    itself = evaluate(pred=gt, gt=gt, metrics="lmd", **options)
    assert itself.frames["lmd"].tolist() == [0.0] * FRAMES
    assert len(calls) == 3 * FRAMES  # the ground truth's points came from the truth cache

    dlib = evaluate(pred=pred, gt=gt, metrics="lmd,akd", landmarks="dlib", progress=False).frames
    default = evaluate(pred=pred, gt=gt, metrics="lmd", progress=False).frames
    np.testing.assert_array_equal(dlib["lmd"], default["lmd"])  # dlib stays lmd's default
    assert np.all(dlib["akd"] > 0) and not np.allclose(dlib["akd"], expected_akd)


def test_fan_landmarks_without_weights_are_missing_with_the_download_steps(frames, torch_home):
    gt, _ = frames
    result = evaluate(pred=gt, gt=gt, metrics="lmd,mlmd", landmarks="fan", progress=False)
    assert set(result.missing) == {"lmd", "mlmd"}
    assert "2DFAN-4.pth.tar" in result.missing["lmd"] and "adrianbulat.com" in result.missing["lmd"]
    assert evaluate(pred=gt, gt=gt, metrics="lmd", progress=False).missing == {}  # dlib needs no FAN


def test_an_unknown_landmark_backend_is_one_line():
    from metrics import registry
    from metrics.errors import InputError

    for name in ("lmd", "akd"):
        with pytest.raises(InputError, match=f"{name}: landmarks must be one of dlib, fan, got 'mediapipe'"):
            registry.create(name, landmarks="mediapipe")
