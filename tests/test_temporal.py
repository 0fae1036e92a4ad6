"""Temporal metrics on a real photo moved along a known path: known answers and monotonic behaviour."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from benchmark.evaluation import evaluate
from metrics import registry
from metrics.image import lpips
from metrics.temporal_kernels import end_point_error, landmark_weights, occlusion_mask, warp_error

FRAMES = 6
VELOCITY = (1.5, 0.75)  # pixels per frame (x, y)
TEMPORAL = ["flow_gap", "tof", "warp_error", "motion_inheritance"]


def shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def gt_video() -> np.ndarray:
    """128x128 crops around the astronaut's face, the camera panning by VELOCITY per frame."""
    from skimage import data

    photo = data.astronaut()
    return np.stack([shift(photo, -VELOCITY[0] * t, -VELOCITY[1] * t)[55:183, 155:283] for t in range(FRAMES)])


def jittered(video: np.ndarray, amplitude: float, seed: int = 0) -> np.ndarray:
    """Each frame moved by its own sub-pixel offset: one fixed random direction per frame, times amplitude."""
    offsets = np.random.default_rng(seed).uniform(-1, 1, size=(len(video), 2))
    return np.stack([shift(frame, *(amplitude * offset)) for frame, offset in zip(video, offsets)])


def means(frame) -> dict[str, float]:
    return {c: float(np.nanmean(frame[c].replace(np.inf, np.nan))) for c in frame.columns if c not in ("frame", "protocol")}


def test_registered_with_flow_option():
    for name in TEMPORAL:
        spec = registry.get(name)
        # tof's definition (TecoGAN's) names Farneback flow; the others default to DIS
        assert spec.kind == "temporal" and spec.defaults["flow"] == ("farneback" if name == "tof" else "dis")
        assert not spec.higher_is_better
    assert registry.get("tlp").kind == "temporal"


def test_still_video_has_no_flow(gt_video):
    still = np.repeat(gt_video[:1], 4, axis=0)
    result = evaluate(pred=still, gt=still, metrics=TEMPORAL, progress=False).frames
    assert np.isnan(result["flow_gap"].iloc[0])  # the first frame has no pair
    values = means(result)
    assert values["flow_mag_gt"] < 1e-3 and values["flow_mag_pred"] < 1e-3
    for column in ("flow_gap", "tof", "warp_error", "warp_error_gt", "motion_inheritance"):
        assert values[column] < 1e-6, column


def test_ground_truth_against_itself_is_zero(gt_video):
    result = evaluate(pred=gt_video, gt=gt_video, metrics=TEMPORAL, progress=False, batch_size=4).frames
    values = means(result)
    for column in ("flow_gap", "tof", "motion_inheritance", "mi_epe_1", "mi_epe_2", "mi_epe_4", "mi_epe_lmk"):
        assert values[column] == 0.0, column
    # the warping error of the ground truth itself is its floor (flow accuracy), not zero
    np.testing.assert_array_equal(result["warp_error"].to_numpy(), result["warp_error_gt"].to_numpy())
    assert 0 < values["warp_error_gt"] < 2e-3
    # the ground truth's own motion is the known pan
    assert values["flow_mag_gt"] == pytest.approx(np.hypot(*VELOCITY), abs=0.1)


def test_frozen_output_flow_gap_is_the_ground_truth_motion(gt_video):
    frozen = np.repeat(gt_video[:1], FRAMES, axis=0)
    result = evaluate(pred=frozen, gt=gt_video, metrics=["flow_gap", "motion_inheritance"], progress=False).frames
    pairs = result.iloc[1:]
    np.testing.assert_allclose(pairs["flow_mag_pred"], 0, atol=1e-6)
    np.testing.assert_allclose(pairs["flow_gap"], pairs["flow_mag_gt"], atol=1e-6)
    np.testing.assert_allclose(pairs["flow_gap"], np.hypot(*VELOCITY), atol=0.1)
    # from the first frame, frame t moved by t * velocity: EPE t*|v| at scale 1, halved per scale
    steps = np.arange(1, FRAMES) * np.hypot(*VELOCITY)
    np.testing.assert_allclose(pairs["mi_epe_1"], steps, rtol=0.08)
    np.testing.assert_allclose(pairs["mi_epe_2"], steps / 2, rtol=0.08)
    np.testing.assert_allclose(pairs["mi_epe_4"], steps / 4, rtol=0.08)
    np.testing.assert_allclose(pairs["mi_epe_lmk"], steps, rtol=0.08)  # uniform motion: weighting changes nothing


def test_growing_jitter_grows_every_temporal_metric_psnr_cannot_tell_it_from_an_offset(gt_video, alexnet_in_hub):
    # Measured (means over frames) for amplitudes 0.15, 0.4, 0.9 px: PSNR 43.5, 35.2, 28.4 dB;
    # tof 0.19, 0.52, 1.20; flow_gap 0.13, 0.36, 0.69; warp_error 3.6e-4, 8.0e-4, 3.0e-3;
    # motion_inheritance 0.09, 0.25, 0.59; tlp 0.10, 0.24, 0.44 (random-init AlexNet trunk).
    amplitudes = [0.15, 0.4, 0.9]
    names = ["psnr", *TEMPORAL, "tlp"]
    rows = [means(evaluate(pred=jittered(gt_video, a), gt=gt_video, metrics=names, progress=False).frames) for a in amplitudes]
    for column in ("flow_gap", "tof", "warp_error", "motion_inheritance", "tlp"):
        curve = [row[column] for row in rows]
        assert all(b > 1.5 * a for a, b in zip(curve, curve[1:])), f"{column}: {curve}"
    assert len({round(row["warp_error_gt"], 12) for row in rows}) == 1  # the ground truth's floor is fixed
    # The same sub-pixel offset on every frame: PSNR as low (PSNR cannot tell a steady offset from
    # jitter), temporal metrics far lower.
    offset = np.full(2, 0.9 / np.sqrt(2))
    constant = np.stack([shift(frame, *offset) for frame in gt_video])
    steady = means(evaluate(pred=constant, gt=gt_video, metrics=names, progress=False).frames)
    assert abs(steady["psnr"] - rows[-1]["psnr"]) < 3
    for column in ("flow_gap", "tof", "motion_inheritance"):
        assert steady[column] < rows[-1][column] / 3, column
    assert steady["tlp"] < rows[-1]["tlp"]  # a steady bilinear shift still blurs: LPIPS sees some of it


def test_streaming_does_not_depend_on_batch_size(gt_video):
    pred = jittered(gt_video, 0.5, seed=3)
    one = evaluate(pred=pred, gt=gt_video, metrics=TEMPORAL, progress=False, batch_size=1).frames
    all_at_once = evaluate(pred=pred, gt=gt_video, metrics=TEMPORAL, progress=False, batch_size=FRAMES).frames
    columns = [c for c in one.columns if c not in ("frame", "protocol")]
    np.testing.assert_allclose(one[columns].to_numpy(), all_at_once[columns].to_numpy(), atol=1e-6)


def test_flow_backend_is_an_option(gt_video):
    """tof's default flow is TecoGAN's (Farneback); DIS is an option, and its numbers differ."""
    pred = jittered(gt_video, 0.5, seed=4)
    default = evaluate(pred=pred, gt=gt_video, metrics=["tof"], progress=False).frames
    dis = evaluate(pred=pred, gt=gt_video, metrics=["tof"], progress=False, flow="dis").frames
    farneback = evaluate(pred=pred, gt=gt_video, metrics=["tof"], progress=False, flow="farneback").frames
    np.testing.assert_array_equal(default["tof"].to_numpy(), farneback["tof"].to_numpy())
    assert not np.allclose(dis["tof"].iloc[1:], farneback["tof"].iloc[1:])
    missing = evaluate(pred=pred, gt=gt_video, metrics=["tof"], progress=False, flow="raft")
    assert "tof" in missing.missing and "raft_large" in missing.missing["tof"]


def test_tlp_matches_lpips_of_adjacent_frames(gt_video, alexnet_in_hub):
    pred = jittered(gt_video, 0.5, seed=5)
    result = evaluate(pred=pred, gt=gt_video, metrics=["tlp"], progress=False, batch_size=4).frames

    def tensor(video):
        return torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255

    p, g = tensor(pred), tensor(gt_video)
    expected = 100 * (lpips(g[:-1], g[1:]) - lpips(p[:-1], p[1:])).abs()
    assert np.isnan(result["tlp"].iloc[0])
    np.testing.assert_allclose(result["tlp"].iloc[1:], expected.double().numpy(), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- kernels, closed forms


def test_occlusion_of_consistent_and_inconsistent_flows():
    forward = torch.zeros(1, 2, 32, 32)
    forward[:, 0] = 3.0
    assert not occlusion_mask(forward, -forward).any()  # uniform motion, consistent both ways
    assert occlusion_mask(forward, torch.zeros_like(forward)).all()  # |3|^2 > 0.01*9 + 0.5
    boundary = torch.zeros(1, 2, 32, 32)
    boundary[:, 0, :, 16:] = 2.0  # a motion edge at column 16
    mask = occlusion_mask(boundary, -boundary)[0, 0]  # Lai's forward differences: the column before the edge
    assert mask[:, 15].all() and not mask[:, :15].any() and not mask[:, 16:].any()
    mask = occlusion_mask(boundary, -boundary, variant="central")[0, 0]  # central differences: both sides
    assert mask[:, 15:17].all() and not mask[:, :15].any() and not mask[:, 17:].any()


def test_warp_error_of_an_exact_integer_shift_is_zero_inside():
    rng = np.random.default_rng(0)
    frame = torch.from_numpy(rng.uniform(size=(1, 3, 40, 40))).float()
    frame[..., 34:] = 0.5  # flat right edge, so the replicated border is exact
    moved = torch.roll(frame, shifts=(0, 2), dims=(2, 3))  # frame t+1 = frame t moved 2 px right
    forward = torch.zeros(1, 2, 40, 40)
    forward[:, 0] = 2.0
    assert warp_error(frame, moved, forward, -forward).item() < 1e-10
    # a wrong frame: the masked MSE equals the plain MSE of the difference (no pixel occluded)
    other = torch.from_numpy(rng.uniform(size=(1, 3, 40, 40))).float()
    zero = torch.zeros(1, 2, 40, 40)
    assert warp_error(frame, other, zero, zero).item() == pytest.approx(((frame - other) ** 2).mean().item(), rel=1e-6)


def test_epe_scales_and_landmark_weights():
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = 4.0
    assert end_point_error(flow, torch.zeros_like(flow), 0.25).shape == (1, 4, 4)
    assert torch.allclose(end_point_error(flow, torch.zeros_like(flow), 0.5), torch.full((1, 8, 8), 2.0))
    landmarks = np.zeros((68, 2)) + 8.0
    landmarks[36], landmarks[45] = (2.0, 8.0), (12.0, 8.0)
    weights = landmark_weights(landmarks, 16, 16, sigma=0.1, strength=4.0)
    assert weights[8, 8] == pytest.approx(5.0) and weights[0, 15] < 1.01


def test_evaluators_keep_one_frame_whatever_the_video_length(gt_video):
    frames = torch.from_numpy(gt_video).permute(0, 3, 1, 2).float() / 255
    evaluators = {name: registry.create(name) for name in TEMPORAL}
    for start in range(0, FRAMES, 2):
        batch = registry.Batch(list(range(start, start + 2)), frames[start : start + 2], frames[start : start + 2])
        for evaluator in evaluators.values():
            evaluator.update(batch)
    for name in ("flow_gap", "tof", "warp_error"):
        previous = evaluators[name].previous
        assert previous.gt.shape[0] == 1 and previous.pred.shape[0] == 1 and previous.frame_id == FRAMES - 1
        assert previous.pred_inputs.shape[0] == 1
    first = evaluators["motion_inheritance"].first
    assert first.gt.shape[0] == 1 and first.pred.shape[0] == 1
