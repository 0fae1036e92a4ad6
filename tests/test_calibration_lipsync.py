"""LSE-D, LSE-C and the AV offset against the numbers syncnet_python (and Wav2Lip's scoring script) gave on the
recipe's talking sequences (stored with the table: ``tests/calibration/inputs/lipsync``) with the same random ``syncnet_v2.model`` (``tests/calibration/lipsync.csv``,
made by ``tests/calibration/run_syncnet.py`` outside the project). Tolerance 1e-4 per window and per
sequence; the offset exactly.
"""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np
import pytest
import torch
from calibration_recipe import MAX_DIFFERING, frame_differences
from calibration_tables import manifest, rows_by_case
from lipsync_recipe import CASES, frames_rgb, make_case, stored_case, syncnet_weights, tensor_digest

from benchmark import evaluate

MANIFEST = manifest("lipsync")
TOLERANCE = 1e-4


def table() -> dict[str, list[dict]]:
    return rows_by_case(MANIFEST)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = syncnet_weights(tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model")
    if tensor_digest(torch.load(path)) != MANIFEST["weights"]["tensor_sha256"]:
        pytest.fail("the recipe's random SyncNet is not the one the table was made with (torch's initialisation "
                    "changed): re-make tests/calibration/lipsync.csv with run_syncnet.py")
    return path


@cache
def _inputs(name: str):
    """The case's stored frames and audio, checked against the checksums of those the table was made from."""
    frames, audio = stored_case(name)
    if hashlib.sha256(frames.tobytes()).hexdigest() != MANIFEST["cases"][name]["frames_sha256"] \
            or audio.digest() != MANIFEST["cases"][name]["audio_sha256"]:
        pytest.fail(f"stored calibration input {name!r} is not the one the table was made from: re-make it with "
                    "run_syncnet.py")
    return frames, audio


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_recipe_remakes_the_stored_input_up_to_cpu_rounding(name, tmp_path):
    """Bit-equality cannot hold across CPUs (the synthetic renderer is float code whose SIMD kernels are
    picked at run time, see calibration_recipe): within one grey level in a few values, and audio samples
    within one step in a few samples, can."""
    sequence, audio = make_case(CASES[name], tmp_path)
    frames, stored_audio = _inputs(name)
    made = frames_rgb(sequence)
    assert not frame_differences("frames", made, frames)
    samples, stored_samples = audio.aligned(len(made)).samples.astype(int), stored_audio.samples.astype(int)
    assert samples.shape == stored_samples.shape and (audio.rate, audio.fps) == (stored_audio.rate, stored_audio.fps)
    assert np.abs(samples - stored_samples).max() <= 1 and (samples != stored_samples).mean() <= MAX_DIFFERING


def test_the_table_names_its_scripts_shims_and_cases():
    for script in ("syncnet_python", "wav2lip"):
        entry = MANIFEST["scripts"][script]
        assert entry["repository"] and len(entry["commit"]) == 40 and entry["paths"] and entry["how"]
    assert MANIFEST["shims"] and set(table()) == set(CASES)
    # Wav2Lip's scoring gives the same numbers as syncnet_python's on the same crops
    for name, row in MANIFEST["wav2lip_crosscheck"].items():
        mean = next(r for r in table()[name] if r["frame"] == "mean")
        assert abs(row["wav2lip_minval"] - float(mean["lse_d"])) < 1e-6
        assert row["wav2lip_offset"] == int(mean["av_offset"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_lse_equals_syncnet_python(name, weights):
    frames, audio = _inputs(name)
    result = evaluate(pred=frames, gt=frames, metrics="lse_d,lse_c,av_offset", audio=audio, progress=False,
                      syncnet_weights=str(weights), lse_crop=CASES[name].crop)
    assert not result.missing
    values = result.frames
    rows = table()[name]
    mean = next(r for r in rows if r["frame"] == "mean")
    assert abs(values["lse_d"].mean() - float(mean["lse_d"])) <= TOLERANCE
    assert abs(values["lse_c"].mean() - float(mean["lse_c"])) <= TOLERANCE
    assert set(values["av_offset"].dropna()) == {float(mean["av_offset"])}
    per_window = [r for r in rows if r["frame"] != "mean"]
    if per_window:
        windows = len(per_window)
        np.testing.assert_allclose(values["lse_d"][:windows], [float(r["lse_d"]) for r in per_window], rtol=0,
                                   atol=TOLERANCE)
        np.testing.assert_allclose(values["lse_c"][:windows], [float(r["lse_c"]) for r in per_window], rtol=0,
                                   atol=TOLERANCE)
        assert values["lse_d"][windows:].isna().all()  # the frames that start no window
