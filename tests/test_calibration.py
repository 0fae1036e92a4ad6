"""Every compatibility protocol, tOF and the warping error against the numbers the published
scripts themselves produced (``tests/calibration/``, made by ``tests/calibration/run_scripts.py``
outside the project), on the inputs stored with the table (``tests/calibration/inputs``); the recipe
that made them (``calibration_recipe.make_inputs``) is checked to remake them up to CPU rounding.

Tolerances (the acceptance bar for "equal to the script"): |cabench - script| <= 1e-4 dB for
PSNR and <= 1e-5 for SSIM / MS-SSIM, LPIPS, L1 and L2, per frame; tOF and the warping error to
1e-5 relative per pair.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from functools import cache

import numpy as np
import pytest
import torch
from calibration_recipe import (
    CASES,
    TABLE,
    analytic_flows,
    input_file,
    make_inputs,
    rounding_differences,
    save_alexnet_trunk,
    stored_inputs,
)

from benchmark import evaluate
from metrics.errors import InputError
from metrics.protocols import get_protocol
from metrics.temporal_kernels import masked_warp_error, occlusion_mask, resample, tecogan_crop

MANIFEST = json.loads((TABLE / "manifest.json").read_text())
TOLERANCE = {"psnr": 1e-4, "ssim": 1e-5, "lpips": 1e-5, "l1": 1e-5, "l2": 1e-5}
PROTOCOL_SCRIPTS = ("imavatar", "pointavatar", "insta", "nerface", "nha")


def table(script: str) -> dict[str, list[dict]]:
    """The script's rows grouped by case, in frame order."""
    rows = defaultdict(list)
    with open(TABLE / MANIFEST["scripts"][script]["table"], newline="") as handle:
        for row in csv.DictReader(handle):
            rows[row["case"]].append(row)
    return dict(rows)


@cache
def inputs(name: str):
    """The case's stored inputs, checked against the checksum of those the table was made from."""
    stored = stored_inputs(name)
    if stored.checksum() != MANIFEST["cases"][name]["sha256"]:
        pytest.fail(f"{input_file(name)} is not the input the table was made from: re-make tests/calibration "
                    "with run_scripts.py")
    return stored


@pytest.fixture(scope="module")
def trunk(tmp_path_factory):
    return save_alexnet_trunk(tmp_path_factory.mktemp("calibration") / "alexnet_trunk.pth")


def test_the_table_names_each_script_and_every_input_recipe():
    for script in (*PROTOCOL_SCRIPTS, "tecogan", "lai"):
        entry = MANIFEST["scripts"][script]
        assert entry["repository"] and len(entry["commit"]) == 40 and entry["paths"] and entry["how"]
        assert set(table(script)) <= set(MANIFEST["cases"])
    for name, case in MANIFEST["cases"].items():
        assert name in CASES and case["recipe"]["synth_size"] == CASES[name].synth_size
    assert {path.stem for path in input_file("any").parent.glob("*.npz")} == set(MANIFEST["cases"]) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_recipe_remakes_the_stored_input_up_to_cpu_rounding(name):
    """Bit-equality cannot hold across CPUs (OpenCV and NumPy pick SIMD kernels at run time, see
    calibration_recipe); one grey level in a few values and 1e-6 px can, and a change to the renderer or a
    degradation breaks it."""
    assert MANIFEST["cases"][name]["file"] == f"inputs/{name}.npz"
    problems = rounding_differences(make_inputs(CASES[name]), inputs(name))
    assert not problems, f"the recipe no longer makes calibration input {name!r} (the synthetic renderer or a " \
                         f"degradation changed): {'; '.join(problems)}; re-make tests/calibration with run_scripts.py"


def test_rounding_differences_tell_cpu_rounding_from_a_changed_input():
    stored = inputs("256x256-alpha")
    same = type(stored)(stored.gt.copy(), stored.pred.copy(), stored.landmarks + 1e-9)
    same.gt[0, 10, 20, 1] ^= 1  # one value one grey level off: rounding
    assert rounding_differences(same, stored) == []
    brighter = type(stored)(np.minimum(stored.gt.astype(int) + 1, 255).astype(np.uint8), stored.pred, stored.landmarks)
    assert rounding_differences(brighter, stored) and "gt" in rounding_differences(brighter, stored)[0]
    two_off = type(stored)(stored.gt, stored.pred.copy(), stored.landmarks)
    value = int(two_off.pred[1, 5, 5, 0])
    two_off.pred[1, 5, 5, 0] = value + 2 if value < 254 else value - 2  # one value, but two grey levels
    assert rounding_differences(two_off, stored)[0].startswith("pred: up to 2 grey levels")
    moved = type(stored)(stored.gt, stored.pred, stored.landmarks + 1e-3)
    assert rounding_differences(moved, stored)[0].startswith("landmarks")
    assert rounding_differences(inputs("256x256-plain"), stored)  # RGB vs RGBA


@pytest.mark.parametrize("script", PROTOCOL_SCRIPTS)
def test_protocol_equals_its_script(script, trunk):
    protocol = get_protocol(script)
    sizes_seen = set()
    for name, rows in table(script).items():
        case = inputs(name)
        sizes_seen.add(CASES[name].crop[2:])
        metrics = [m for m in TOLERANCE if m in rows[0] and not rows[0][m].startswith("error")]
        annotations = {"landmarks": case.landmarks} if protocol.needs_landmarks else None
        result = evaluate(pred=case.pred, gt=case.gt, metrics=metrics, protocol=script, annotations=annotations,
                          backbone_weights=trunk, progress=False).frames
        for row in rows:
            ours = result[result["frame"] == int(row["frame"])].iloc[0]
            for metric in metrics:
                difference = abs(float(ours[metric]) - float(row[metric]))
                assert difference <= TOLERANCE[metric], f"{script} {name} frame {row['frame']} {metric}: " \
                                                        f"cabench {ours[metric]!r}, script {row[metric]}"
        for metric in (m for m in TOLERANCE if m in rows[0] and rows[0][m].startswith("error")):
            with pytest.raises(InputError):  # where the script fails, cabench refuses too
                evaluate(pred=case.pred, gt=case.gt, metrics=(metric,), protocol=script, progress=False)
    assert sizes_seen == {(144, 176), (300, 300), (256, 256), (512, 512), (320, 256)}


def test_tof_equals_tecogan_metrics_py():
    """TecoGAN computes Farneback flows of both videos and scores pairs (2,3)... after its crop_8x8: tof's
    default (no flow option) is that definition."""
    for name, rows in table("tecogan").items():
        case = inputs(name)
        result = evaluate(pred=case.pred, gt=case.gt, metrics=("tof",), progress=False).frames
        for row in rows:
            ours = float(result.loc[result["frame"] == int(row["frame"]), "tof"].iloc[0])
            assert ours == pytest.approx(float(row["tof"]), rel=1e-5), (name, row["frame"])
        whole = evaluate(pred=case.pred, gt=case.gt, metrics=("tof",), flow="farneback", crop="none", progress=False).frames
        assert not np.allclose(whole["tof"].iloc[1:], result["tof"].iloc[1:])  # the crop matters


def test_warp_error_equals_lai_evaluate_warp_error_given_the_same_flows():
    for name, rows in table("lai").items():
        case = inputs(name)
        height, width = CASES[name].height, CASES[name].width
        pred = get_protocol("canonical").prepare(case.pred, case.gt)
        for row in rows:
            t = int(row["frame"]) - 1
            forward, backward = (torch.from_numpy(f).permute(2, 0, 1)[None] for f in analytic_flows(height, width, t))
            occluded = occlusion_mask(forward, backward)
            assert 0.02 < occluded.float().mean() < 0.6  # the check is exercised, not trivially all or nothing
            visible = ~occluded
            for column, frames in (("warp_error", pred.pred), ("warp_error_gt", pred.gt)):
                ours = float(masked_warp_error(frames[t : t + 1], frames[t + 1 : t + 2], forward, visible)[0])
                assert ours == pytest.approx(float(row[column]), rel=1e-5), (name, t, column)
            central = ~occlusion_mask(forward, backward, variant="central")
            assert (central != visible).any()  # the earlier variant is a different mask


# ---------------------------------------------------------------------------- the originals' kernels


def test_tecogan_crop_keeps_the_centred_multiple_of_32_with_8_px_borders():
    rows, cols = tecogan_crop(144, 176)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (8, 136, 8, 168)
    rows, cols = tecogan_crop(300, 512)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (22, 278, 16, 496)  # 288 > 284 -> 256; 512 -> 480
    with pytest.raises(InputError, match="48x48"):
        tecogan_crop(40, 64)
    with pytest.raises(InputError, match="crop must be one of"):
        evaluate(pred=np.zeros((2, 64, 64, 3), np.uint8), gt=np.zeros((2, 64, 64, 3), np.uint8), metrics=("tof",),
                 crop="border", progress=False)


def test_resample_is_bilinear_with_replicated_borders():
    """Against torch's grid_sample in float64 (border padding, corners aligned: the same sampling); the
    positions are float32, as in FlowNet2's kernel, so they agree to the float32 rounding of x + u."""
    rng = np.random.default_rng(3)
    images = torch.from_numpy(rng.uniform(size=(2, 3, 21, 34)).astype(np.float32))
    flow = torch.from_numpy((rng.standard_normal((2, 2, 21, 34)) * 7).astype(np.float32))
    ys, xs = torch.meshgrid(torch.arange(21.0, dtype=torch.float64), torch.arange(34.0, dtype=torch.float64), indexing="ij")
    grid = torch.stack([2 * (xs + flow[:, 0].double()) / 33 - 1, 2 * (ys + flow[:, 1].double()) / 20 - 1], dim=-1)
    reference = torch.nn.functional.grid_sample(images.double(), grid, padding_mode="border", align_corners=True)
    assert (resample(images, flow).double() - reference).abs().max() < 1e-5
    assert torch.equal(resample(images, torch.zeros_like(flow)), images)


def test_resample_rounds_as_the_kernel_to_the_last_bit():
    """Against FlowNet2's ``Resample2d`` arithmetic written out in numpy: float32 positions, double
    weights, the float32 sum rounded after each of the four terms in the kernel's order (top-left,
    top-right, bottom-left, bottom-right), indices clamped to the frame; bit-equal, with signed
    values and zero flow in part of the frame."""
    rng = np.random.default_rng(5)
    images = rng.uniform(-255, 255, size=(3, 2, 17, 23)).astype(np.float32)
    flow = (rng.standard_normal((3, 2, 17, 23)) * 6).astype(np.float32)
    flow[0, :, :4] = 0
    x = np.arange(23, dtype=np.float32)[None, None, :] + flow[:, 0]
    y = np.arange(17, dtype=np.float32)[None, :, None] + flow[:, 1]
    x0, y0 = np.floor(x), np.floor(y)
    alpha, beta = (x - x0).astype(np.float64), (y - y0).astype(np.float64)
    left, right = np.clip(x0, 0, 22).astype(int), np.clip(x0 + 1, 0, 22).astype(int)
    top, bottom = np.clip(y0, 0, 16).astype(int), np.clip(y0 + 1, 0, 16).astype(int)
    frame = np.arange(3)[:, None, None]
    expected = np.zeros_like(images)
    for weight, rows, cols in (((1 - alpha) * (1 - beta), top, left), (alpha * (1 - beta), top, right),
                               ((1 - alpha) * beta, bottom, left), (alpha * beta, bottom, right)):
        for channel in range(2):
            neighbour = images[frame, channel, rows, cols].astype(np.float64)
            expected[:, channel] = (expected[:, channel].astype(np.float64) + weight * neighbour).astype(np.float32)
    found = resample(torch.from_numpy(images), torch.from_numpy(flow)).numpy()
    assert np.array_equal(found.view(np.int32), expected.view(np.int32))
