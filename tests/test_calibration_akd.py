"""akd against the numbers FOMM's pose-evaluation gave (face_alignment's FAN landmarks at the commit it pins,
cmp_kp.py on them) on the recipe's frames with the same random ``2DFAN-4.pth.tar``
(``tests/calibration/akd.csv``, made by ``tests/calibration/run_face_alignment.py`` outside the project).
Tolerance 1e-4 px per frame and for cmp_kp.py's average."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from arcface_recipe import AKD_CASES, AKD_FRAMES, case_frames, fan_weights, state_digest
from calibration_tables import manifest, rows_by_case

from benchmark import evaluate

MANIFEST = manifest("akd")
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = fan_weights(tmp_path_factory.mktemp("fan") / "2DFAN-4.pth.tar")
    if state_digest(torch.load(path)) != MANIFEST["weights"]["tensor_sha256"]:
        pytest.fail("the recipe's random FAN is not the one the table was made with: re-make tests/calibration/akd.csv")
    return path


def test_the_table_names_its_scripts_and_cases():
    for script in ("pose-evaluation", "face-alignment"):
        entry = MANIFEST["scripts"][script]
        assert len(entry["commit"]) == 40 and entry["paths"] and entry["how"]
    assert set(rows_by_case(MANIFEST)) == set(AKD_CASES) and MANIFEST["shims"]


@pytest.mark.parametrize("name", AKD_CASES)
def test_akd_equals_pose_evaluation(name, weights):
    gt, pred = (frames[:AKD_FRAMES] for frames in case_frames(name))
    if hashlib.sha256(gt.tobytes() + pred.tobytes()).hexdigest() != MANIFEST["cases"][name]["frames_sha256"]:
        pytest.fail(f"calibration input {name!r} is not the one the table was made from")
    result = evaluate(pred=pred, gt=gt, metrics="akd", fan_weights=str(weights), progress=False)
    assert not result.missing
    rows = rows_by_case(MANIFEST)[name]
    per_frame = [float(r["akd"]) for r in rows if r["frame"] != "mean"]
    average = float(next(r["akd"] for r in rows if r["frame"] == "mean"))
    np.testing.assert_allclose(result.frames["akd"], per_frame, rtol=0, atol=TOLERANCE)
    assert abs(result.frames["akd"].mean() - average) <= TOLERANCE


def test_akd_of_the_ground_truth_itself_is_zero(weights):
    gt, _ = case_frames("astronaut-gt")
    result = evaluate(pred=gt[:1], gt=gt[:1], metrics="akd", fan_weights=str(weights), progress=False)
    assert result.frames["akd"].tolist() == [0.0]
