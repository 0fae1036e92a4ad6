"""csim_arcface against the numbers insightface's own ArcFaceONNX (norm_crop + get_feat + compute_sim) gave on the
recipe's frames and keypoints with the same random ArcFace ONNX (``tests/calibration/arcface.csv``, made by
``tests/calibration/run_insightface.py`` outside the project). Tolerance 1e-5 per frame."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from arcface_recipe import (
    CASES,
    EMBEDDING_STATS,
    STORED_MODEL,
    arcface_onnx,
    case_frames,
    embedding_statistics,
    onnx_digest,
    onnx_tensors,
)
from calibration_tables import manifest, rows_by_case

from benchmark import evaluate

MANIFEST = manifest("arcface")
TOLERANCE = 1e-5


def table() -> dict[str, list[float]]:
    return {case: [float(r["csim_arcface"]) for r in rows] for case, rows in rows_by_case(MANIFEST).items()}


@pytest.fixture(scope="module")
def model():
    if onnx_digest(STORED_MODEL) != MANIFEST["model"]["initializer_sha256"]:
        pytest.fail(f"{STORED_MODEL} is not the model the table was made with: re-make "
                    "tests/calibration/arcface.csv with run_insightface.py --remake-model")
    return STORED_MODEL


def test_the_recipe_remakes_the_stored_model_up_to_float32_rounding(tmp_path):
    """The stored model is the recipe's: every tensor drawn from the seed is equal, and the convolutions
    the exporter folded their BatchNorm into agree to float32 rounding (their last bits depend on the CPU)."""
    made, stored = onnx_tensors(arcface_onnx(tmp_path / "w600k_r50.onnx")), onnx_tensors(STORED_MODEL)
    assert made.keys() == stored.keys()
    for name, values in stored.items():
        np.testing.assert_allclose(made[name], values, rtol=1e-5, atol=1e-7, err_msg=name)
        if not name.startswith("onnx::Conv"):
            assert np.array_equal(made[name], values), name


def test_the_stored_embedding_statistics_are_the_recipes_up_to_float32_rounding():
    """The one part of the model stored rather than drawn (its float32 convolution sums round differently
    on different CPUs, so the model's digest could not hold everywhere): measured again, they agree to
    float32 summation rounding (1e-4 relative; the means, spread over +-0.15, also to 1e-6 absolute)."""
    measured = embedding_statistics()
    with np.load(EMBEDDING_STATS) as stored:
        np.testing.assert_allclose(measured["mean"], stored["mean"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(measured["var"], stored["var"], rtol=1e-4, atol=0)
        assert np.ptp(stored["mean"]) > 0.1 and (stored["var"] > 0).all()


def test_the_table_names_its_script_and_cases():
    entry = MANIFEST["scripts"]["insightface"]
    assert entry["package"].startswith("insightface==") and entry["paths"] and entry["how"]
    assert set(table()) == set(CASES) and MANIFEST["shims"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_csim_arcface_equals_insightface(name, model):
    gt, pred = case_frames(name)
    if hashlib.sha256(gt.tobytes() + pred.tobytes()).hexdigest() != MANIFEST["cases"][name]["frames_sha256"]:
        pytest.fail(f"calibration input {name!r} is not the one the table was made from")
    result = evaluate(pred=pred, gt=gt, metrics="csim_arcface", arcface_weights=str(model),
                      face_region=CASES[name].face_region, progress=False)
    assert not result.missing
    np.testing.assert_allclose(result.frames["csim_arcface"], table()[name], rtol=0, atol=TOLERANCE)


def test_missing_model_names_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CABENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    gt, pred = case_frames("astronaut-gt")
    result = evaluate(pred=pred, gt=gt, metrics="csim_arcface", progress=False)
    assert "w600k_r50.onnx" in result.missing["csim_arcface"]
    assert "cabench weights --download arcface-buffalo-l" in result.missing["csim_arcface"]
    (tmp_path / "w600k_r50.onnx").write_bytes(b"not a model")
    result = evaluate(pred=pred, gt=gt, metrics="csim_arcface", progress=False)
    assert "w600k_r50.onnx: unusable as ArcFace" in result.missing["csim_arcface"]
    assert "not an ONNX model" in result.missing["csim_arcface"]
