"""Set-level metrics (FID, KID) and CPBD against their reference implementations and closed forms.

The reference numbers in ``tests/calibration/set_metrics.csv`` were produced by pytorch-fid,
torch-fidelity and the ``cpbd`` package run outside the project on the recipe's inputs
(``tests/set_metrics_recipe.py``; how: ``tests/calibration/run_set_references.py``).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

sys.path.insert(0, str(Path(__file__).parent))

from set_metrics_recipe import CASES, TABLE, make_set  # noqa: E402

from metrics import fid as kernels  # noqa: E402
from metrics.cpbd import cpbd, grayscale  # noqa: E402


def reference(metric: str, reference_name: str) -> dict[tuple[str, int], float]:
    with open(TABLE / "set_metrics.csv", newline="") as handle:
        return {(row["case"], int(row["frame"])): float(row["value"]) for row in csv.DictReader(handle)
                if row["metric"] == metric and row["reference"] == reference_name}


@cache
def inputs(case: str) -> tuple[np.ndarray, np.ndarray]:
    return make_set(CASES[case])


# ----------------------------------------------------------------------------------------- CPBD


@pytest.mark.parametrize("case", sorted(CASES))
def test_cpbd_equals_the_cpbd_package(case):
    real, fake = inputs(case)
    for role, frames in (("real", real), ("fake", fake)):
        expected = reference(f"cpbd_{role}", "cpbd")
        got = [cpbd(grayscale(frame)) for frame in frames]
        want = [expected[(case, index)] for index in range(len(frames))]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=f"{case} {role}")


def test_cpbd_blur_lowers_sharpness_and_flat_frames_score_zero():
    real, _ = inputs("photos-256x256")
    import cv2

    sharp = np.mean([cpbd(grayscale(frame)) for frame in real[:4]])
    blurred = np.mean([cpbd(grayscale(cv2.GaussianBlur(frame, (0, 0), 3.0))) for frame in real[:4]])
    assert blurred < sharp
    assert cpbd(np.full((128, 128), 77, np.uint8)) == 0.0
    assert cpbd(np.zeros((32, 40), np.uint8)) == 0.0  # smaller than one 64 x 64 block


# ------------------------------------------------------------------------------------- kernels


def test_streaming_statistics_equal_numpy_whatever_the_batches():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((203, 17)) * rng.uniform(0.1, 5, 17) + rng.uniform(-3, 3, 17)
    for splits in ([203], [1, 2, 200], [50] * 4 + [3], list(range(1, 21)) + [-sum(range(1, 21)) + 203]):
        stats, start = kernels.FeatureStatistics(17), 0
        for size in splits:
            stats.update(features[start : start + size])
            start += size
        np.testing.assert_allclose(stats.mean, features.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False), rtol=1e-10, atol=1e-12)
    halves = kernels.FeatureStatistics(17).update(features[:90]).merge(kernels.FeatureStatistics(17).update(features[90:]))
    np.testing.assert_allclose(halves.covariance, np.cov(features, rowvar=False), rtol=1e-10, atol=1e-12)


def test_frechet_distance_of_gaussians_has_its_closed_form():
    # diagonal covariances: |mu1 - mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2))
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert kernels.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n1, n2, d", [(30, 40, 64), (80, 90, 12)])
def test_frechet_distance_from_features_equals_the_sqrtm_form(n1, n2, d):
    rng = np.random.default_rng(n1)
    x = rng.standard_normal((n1, d)) @ rng.standard_normal((d, d)) * 0.3
    y = rng.standard_normal((n2, d)) + 0.5
    sqrtm_form = kernels.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert kernels.frechet_distance_features(x, y) == pytest.approx(sqrtm_form, rel=1e-7)
    # and the trace term is the nuclear norm of the centred cross products
    assert np.trace(scipy.linalg.sqrtm(np.cov(x, rowvar=False) @ np.cov(y, rowvar=False))).real == pytest.approx(
        np.linalg.svd((x - x.mean(0)) @ (y - y.mean(0)).T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1)),
        rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_between_two():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))
    same = kernels.kid(x, y, subsets=20, subset_size=100)
    shifted = kernels.kid(x, y + 1.0, subsets=20, subset_size=100)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 10 * same.std
    assert (same.subsets, same.subset_size) == (20, 100)
    assert kernels.kid(x[:50], y, subset_size=1000).subset_size == 50  # capped at the smaller set, recorded


def test_block_bootstrap_keeps_runs_of_consecutive_frames():
    rng = np.random.default_rng(1)
    indices = kernels.block_bootstrap_indices(100, 5, rng)
    assert len(indices) == 100 and indices.min() >= 0 and indices.max() < 100
    assert np.all(np.diff(indices.reshape(20, 5), axis=1) == 1)


# ------------------------------------------------------------------- FID / KID against references

FEATURES = TABLE / "set_features.npz"  # pytorch-fid's get_activations of every case (real, fake), float32


def reference_features(case: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(FEATURES) as stored:
        return stored[f"{case}/real"], stored[f"{case}/fake"]


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """The recipe's random FID Inception, written in pytorch-fid's format (a state dict saved by torch)."""
    import torch
    from set_metrics_recipe import inception_state, state_checksum

    from metrics.inception import FIDInception
    from metrics.weights import meta_state

    shapes = {key: tuple(value.shape) for key, value in meta_state(FIDInception).items()}
    state = inception_state(shapes)
    manifest = json.loads((TABLE / "set_metrics.json").read_text())
    assert state_checksum(state) == manifest["weights"]["checksum"], "the recipe's weights changed"
    path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save({key: torch.from_numpy(value) for key, value in state.items()}, path)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_fid_and_kid_on_pytorch_fids_features_equal_the_references(case):
    real, fake = reference_features(case)
    expected = reference("fid", "pytorch-fid")[(case, -1)]
    # the exact symmetric form the harness reports from features: within 1e-4 (sqrtm of a product of
    # rank < 2048 carries ~1e-5 relative round-off)
    fid = kernels.frechet_distance_features(fake, real)
    assert fid == pytest.approx(expected, rel=1e-4)
    if case == "photos-256x256":  # 2048² decompositions take a minute on a busy CPU: one case
        stats = [kernels.FeatureStatistics(2048).update(f) for f in (real, fake)]
        # pytorch-fid's own computation (sqrtm of the 2048² product) on its features: its number
        sqrtm_path = kernels.frechet_distance(stats[1].mean, stats[1].covariance, stats[0].mean, stats[0].covariance)
        assert sqrtm_path == pytest.approx(expected, rel=1e-6)  # streamed vs np.cov statistics: ~1e-8
        # the streaming form (two 2048² eigen-decompositions) equals the features' form to 1e-9
        assert kernels.fid_from_statistics(stats[1], stats[0]) == pytest.approx(fid, rel=1e-9)
    kid = kernels.kid(fake, real, subset_size=None)
    assert kid.mean == pytest.approx(reference("kid", "torch-fidelity")[(case, -1)], rel=1e-3)
    # the subset standard deviation, relative to the mean (here each subset is the whole set, so it is rounding)
    assert abs(kid.std - reference("kid_std", "torch-fidelity")[(case, -1)]) <= 1e-3 * abs(kid.mean)


def test_pytorch_fids_command_line_gives_the_functions_number():
    values = reference("fid_cli", "pytorch-fid")
    assert values, "the table has the command line's FID of one case"
    for key, cli in values.items():
        assert cli == pytest.approx(reference("fid", "pytorch-fid")[key], rel=1e-12)


def test_resize_is_pytorch_fids_interpolate():
    import torch
    import torch.nn.functional as F

    from metrics.protocols import get_protocol
    from metrics.setlevel import resize_pytorch_fid

    real, _ = inputs("photos-320x200")
    prepared = get_protocol("pytorch-fid").prepare_gt(real[:2]).gt  # channels-last, as the evaluation gives it
    loader = torch.from_numpy(real[:2].copy()).permute(0, 3, 1, 2).contiguous().float().div(255)  # ToTensor
    expected = 2 * F.interpolate(loader, size=(299, 299), mode="bilinear", align_corners=False) - 1
    assert torch.equal(resize_pytorch_fid(prepared), expected)


@pytest.mark.parametrize("case", ["synth-176x144", "photos-320x200"])
def test_inception_features_equal_pytorch_fids(case, inception_file):
    """Two frames of each set through the network defined here equal pytorch-fid's features of them."""
    import torch

    from metrics.protocols import get_protocol
    from metrics.setlevel import SetMetric

    real, fake = inputs(case)
    want_real, want_fake = reference_features(case)
    metric = SetMetric("fid", get_protocol("pytorch-fid"), torch.device("cpu"), str(inception_file), 0, 1, None, 0)
    protocol = get_protocol("pytorch-fid")
    for frames, want in ((real[:2], want_real[:2]), (fake[-2:], want_fake[-2:])):
        got = metric.features(protocol.prepare_gt(frames).gt)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------- clean-fid and torch-fidelity (their own runs)

PROTOCOL_FEATURES = TABLE / "set_features_protocols.npz"  # each reference's features of 2 real + 2 generated frames
PROTOCOL_INFO = json.loads((TABLE / "fid_protocols.json").read_text())  # resize hashes, versions, shims
# one case per protocol for the fast feature check (the slow test runs every case the reference ran)
FEATURE_CASES = {"clean-fid": "photos-320x200", "torch-fidelity": "synth-256x320", "clean-fid-legacy-pytorch": "synth-176x144",
                 "clean-fid-legacy-tensorflow": "synth-176x144"}


@pytest.fixture(scope="module")
def nvidia_file(tmp_path_factory):
    """The recipe's random FID Inception as a TorchScript file in NVIDIA's layout (clean-fid's
    ``inception-2015-12-05.pt``), made as the calibration run made it (run_fid_protocols.py)."""
    sys.path.insert(0, str(TABLE))
    from run_fid_protocols import save_torchscript
    from set_metrics_recipe import inception_state

    from metrics.inception import FIDInception
    from metrics.weights import meta_state

    path = tmp_path_factory.mktemp("weights") / "inception-2015-12-05.pt"
    save_torchscript(inception_state({key: tuple(v.shape) for key, v in meta_state(FIDInception).items()}), path)
    return path


def weight_file(protocol: str, request) -> Path:
    """The random-weight file in the format ``protocol`` reads (the TorchScript made only when needed)."""
    from metrics.fid_inputs import INPUTS

    return request.getfixturevalue("nvidia_file" if INPUTS[protocol].format == "nvidia" else "inception_file")


@pytest.mark.parametrize("protocol", sorted(PROTOCOL_INFO["resize_sha256"]))
def test_resize_is_bit_equal_to_the_references(protocol):
    """The 299 x 299 values each reference fed its network (SHA-256 of the float32 array of the first two
    real frames of every case: clean-fid's ResizeDataset, torch-fidelity's TensorFlow-1 interpolation)."""
    import hashlib

    from metrics.fid_inputs import INPUTS
    from metrics.protocols import get_protocol

    for case, want in PROTOCOL_INFO["resize_sha256"][protocol].items():
        real, _ = inputs(case)
        resized = INPUTS[protocol].resize(get_protocol(protocol).prepare_gt(real[:2]).gt)
        got = hashlib.sha256(np.ascontiguousarray(resized.numpy(), dtype=np.float32).tobytes()).hexdigest()
        assert got == want, f"{protocol} {case}"


@pytest.mark.parametrize("protocol", sorted(FEATURE_CASES))
def test_features_equal_each_references(protocol, request):
    """Two real and two generated frames through the network defined here, read from each reference's
    weight file, equal that reference's features of them."""
    import torch

    from metrics.protocols import get_protocol
    from metrics.setlevel import SetMetric

    case = FEATURE_CASES[protocol]
    real, fake = inputs(case)
    with np.load(PROTOCOL_FEATURES) as stored:
        want = np.concatenate([stored[f"{protocol}/{case}/real"], stored[f"{protocol}/{case}/fake"]])
    metric = SetMetric("fid", get_protocol(protocol), torch.device("cpu"),
                       str(weight_file(protocol, request)), 0, 1, None, 0)
    got = metric.features(get_protocol(protocol).prepare_gt(np.concatenate([real[:2], fake[-2:]])).gt)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_state_dict_is_not_nvidias_torchscript(inception_file):
    from metrics.errors import WeightsUnusableError
    from metrics.inception import nvidia_state

    with pytest.raises(WeightsUnusableError, match="not a TorchScript file"):
        nvidia_state(inception_file)


# the end-to-end runs: pytorch-fid on its two non-square cases, each other protocol on one case (the CI's
# time); the resize of every case is checked bit for bit above, the network on each protocol's frames,
# and every case's FID and KID from pytorch-fid's own features
END_TO_END = {"pytorch-fid": ("photos-320x200", "synth-256x320"), "torch-fidelity": ("synth-176x144",),
              "clean-fid": ("photos-320x200",)}


def _reference_runs() -> list[tuple[str, str, str]]:
    """(protocol, case, reference) of the FIDs the end-to-end test compares with."""
    return [(protocol, case, protocol if protocol == "pytorch-fid" else f"protocol:{protocol}")
            for protocol, cases in END_TO_END.items() for case in cases]


@pytest.mark.slow
@pytest.mark.parametrize("protocol, case, reference_name", _reference_runs())
def test_fid_end_to_end_equals_each_reference(protocol, case, reference_name, request):
    """Every frame through the network defined here, under each protocol: FID (and KID, where the
    reference computed it on its own features) within 1e-3 of the reference's number."""
    import torch

    from metrics.protocols import get_protocol
    from metrics.setlevel import SetMetric

    real, fake = inputs(case)
    prepared = get_protocol(protocol)
    metric = SetMetric("fid", prepared, torch.device("cpu"), str(weight_file(protocol, request)), 0, 1, None, 0)
    features = [np.concatenate([metric.features(prepared.prepare_gt(s[i : i + 8]).gt) for i in range(0, len(s), 8)])
                for s in (fake, real)]
    assert metric.value(*features).value == pytest.approx(reference("fid", reference_name)[(case, -1)], rel=1e-3)
    if reference_name != "pytorch-fid":  # pytorch-fid has no KID (its features' KID is checked above)
        kid = kernels.kid(*features, subset_size=None).mean
        assert kid == pytest.approx(reference("kid", reference_name)[(case, -1)], rel=1e-3)


# ------------------------------------------------------------------------- in a run (cabench eval)


def _eval(tmp_path, metrics="fid,kid,cpbd", out="out", protocol="pytorch-fid"):
    from benchmark.cli import main

    return main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"blurred={tmp_path / 'blurred'}",
                 "--pred", f"copy={tmp_path / 'copy'}", "--metrics", metrics, "--protocol", protocol,
                 "--out", str(tmp_path / out), "--quiet", "--no-plots"])


@pytest.fixture
def set_folders(tmp_path):
    from benchmark.io import write_frames

    real, fake = inputs("synth-176x144")
    write_frames(tmp_path / "gt", real[:4])
    write_frames(tmp_path / "blurred", fake[:4])
    write_frames(tmp_path / "copy", real[:4])
    return tmp_path


def test_eval_without_the_weight_file_reports_fid_missing_with_the_command(set_folders, torch_home, capsys):
    import pandas as pd

    assert _eval(set_folders) == 0
    printed = capsys.readouterr().out
    # one line per reason, naming every metric it applies to ("fid, kid: missing (...)")
    assert re.search(r"^(\w+, )*fid(, \w+)*: missing \(.*cabench weights --download fid-inception-pytorch-fid", printed,
                     re.M), printed
    rows = pd.read_csv(set_folders / "out" / "set_metrics.csv")
    assert rows["value"].isna().all() and set(rows["scope"]) == {"sequence", "dataset"}
    assert set(pd.read_csv(set_folders / "out" / "per_frame.csv")["method"]) == {"blurred", "copy"}  # cpbd went on


def test_eval_gives_fid_per_sequence_and_dataset_and_computes_ground_truth_features_once(
        set_folders, inception_file, torch_home, monkeypatch):
    import shutil

    import pandas as pd

    from metrics.truth import TruthStore

    shutil.copy(inception_file, torch_home / "hub" / "checkpoints" / inception_file.name)
    computed = []
    original = TruthStore.get

    def counting(self, kind, options, keys, compute):
        def wrapped(indices):
            if kind == "inception":
                computed.append(len(indices))
            return compute(indices)
        return original(self, kind, options, keys, wrapped)

    monkeypatch.setattr(TruthStore, "get", counting)
    # torch-fidelity's file is pytorch-fid's bytes: found under pytorch-fid's name (a manifest alternative)
    assert _eval(set_folders, protocol="pytorch-fid,torch-fidelity") == 0
    # per protocol, 4 ground-truth frames + 4 blurred ones; the copy's frames are the ground truth's (same
    # content, same key) and FID and KID share the features: 8 frames through the network per protocol
    assert sum(computed) == 16
    rows = pd.read_csv(set_folders / "out" / "set_metrics.csv")
    assert set(rows["protocol"]) == {"pytorch-fid", "torch-fidelity"} and rows["missing"].isna().all()
    beside = (set_folders / "out" / "table1_sets.md").read_text()  # Table 1's rows with their set values
    assert "| FID ↓ | KID ↓ |" in beside and "torch-fidelity" in beside and "(n=4/4)" in beside
    rows = rows[rows.protocol == "pytorch-fid"]
    fid = rows[(rows.metric == "fid") & (rows.scope == "sequence")].set_index("method")
    assert fid.loc["copy", "value"] == pytest.approx(0.0, abs=1e-6)
    assert fid.loc["blurred", "value"] > 1.0
    assert (fid["frames"] == 4).all() and (fid["gt_frames"] == 4).all() and (fid["resamples"] == 100).all()
    assert fid.loc["blurred", "ci_low"] <= fid.loc["blurred", "ci_high"]
    kid = rows[(rows.metric == "kid") & (rows.scope == "dataset")].set_index("method")
    assert json.loads(kid.loc["blurred", "details"])["subset_size"] == 4
    table = (set_folders / "out" / "set_metrics.md").read_text()
    assert "FID ↓ (pytorch-fid)" in table and "(n=4/4)" in table
    computed.clear()
    assert _eval(set_folders, protocol="pytorch-fid,torch-fidelity") == 0  # a rerun computes no feature
    assert sum(computed) == 0
    from benchmark.cli import main
    from benchmark.commands.compare import SET_NOTE

    assert main(["compare", "--run", str(set_folders / "out"), "--resamples", "20"]) == 0  # cpbd compared,
    assert SET_NOTE in (set_folders / "out" / "compare.md").read_text()  # the set values: why not, in one line


def test_fid_from_statistics_equals_pytorch_fids_sqrtm_path():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((40, 24)) ** 2, rng.standard_normal((30, 24)) * 0.5 + 0.2  # rank-deficient: n < d too
    for a, b in ((x, y), (x[:20], y[:10])):
        stats = [kernels.FeatureStatistics(24).update(f) for f in (a, b)]
        sqrtm_form = kernels.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
        assert kernels.fid_from_statistics(*stats) == pytest.approx(sqrtm_form, rel=1e-6)
