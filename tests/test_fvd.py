"""FVD (VideoGPT's and StyleGAN-V's) against the references' own numbers (``tests/calibration/fvd.json``).

The references ran outside the project (``tests/calibration/run_fvd_references.py``); this file
regenerates their random-weight file from the recipe (``tests/fvd_recipe.py``), reads their stored
inputs, and checks: VideoGPT's ``preprocess`` bit-equal (a square and a non-square case), the
in-project I3D's logits within 1e-4 of VideoGPT's ``InceptionI3d`` (the clip features ``cabench eval``
keeps in its truth cache; the same test checks the rows, the cache's sharing and resume), the Fréchet distance against VideoGPT's ``frechet_distance`` and StyleGAN-V's
``compute_fvd`` on the reference's features, and the TorchScript mapping on a module in the layout
inferred for StyleGAN-V's file (the real file cannot be obtained here).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from metrics.errors import WeightsUnusableError
from metrics.fid import frechet_distance_features
from metrics.fid_inputs import INPUTS
from metrics.fvd_inputs import videogpt_prepare
from metrics.i3d import I3D, torchscript_state, videogpt_state
from metrics.setlevel import SetMetric
from tests.fvd_recipe import CALIBRATION, CASES, i3d_state, load_case
from tests.set_metrics_recipe import state_checksum

INFO = json.loads((CALIBRATION / "fvd.json").read_text())
FEATURES = CALIBRATION / "fvd_features.npz"


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """The recipe's random I3D state: its checksum is the one of the file VideoGPT's network saved."""
    arrays = i3d_state()
    assert state_checksum(arrays) == INFO["weights_checksum"]
    return {key: torch.from_numpy(value) for key, value in arrays.items()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory, state) -> Path:
    """VideoGPT's random-weight file, regenerated (``torch.save`` of the state dict, as its file is)."""
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(state, path)
    return path


def _clips(values: np.ndarray) -> torch.Tensor:
    """uint8 (n,16,H,W,3) -> float (n,16,3,H,W) in [0,1], as the protocol gives them."""
    return torch.from_numpy(values).permute(0, 1, 4, 2, 3).float() / 255


@pytest.mark.parametrize("case", CASES)
def test_videogpt_preprocess_is_bit_equal(case):
    real, fake = load_case(case)
    for role, values in (("real", real), ("fake", fake)):
        prepared = videogpt_prepare(_clips(values)).numpy()
        assert prepared.shape == (len(values), 3, 16, 224, 224)
        digest = hashlib.sha256(np.ascontiguousarray(prepared, np.float32).tobytes()).hexdigest()
        assert digest == INFO["cases"][case][f"preprocess_sha256_{role}"], (case, role)


@pytest.mark.parametrize("case", CASES)
def test_frechet_distance_equals_videogpt_and_stylegan_v(case):
    with np.load(FEATURES) as stored:
        real, fake = stored[f"{case}/real"], stored[f"{case}/fake"]
    row = INFO["cases"][case]
    ours = frechet_distance_features(fake, real, ddof=1)
    assert ours == pytest.approx(row["fvd_float64"], rel=1e-9)  # VideoGPT's function on float64 features
    assert ours == pytest.approx(row["fvd_float32"], rel=1e-3)  # ... as VideoGPT runs it (float32)
    assert frechet_distance_features(fake, real, ddof=0) == pytest.approx(row["stylegan_v_fvd"], rel=1e-6)


def _write_frames(folder: Path, frames: np.ndarray) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:05d}.png")
    return folder


def test_cabench_eval_fvd_videogpt_per_clip_cache_and_missing_weights(weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CABENCH_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-hub"))
    real, fake = load_case("synth-64x64")
    gt = _write_frames(tmp_path / "gt", real[:2].reshape(-1, *real.shape[2:]))
    # the method's first clip is the ground truth's: its features are computed once, for both (3 clips in all)
    pred = _write_frames(tmp_path / "pred", np.concatenate([real[0], fake[1]]))
    out = tmp_path / "out"
    args = ["eval", "--gt", str(gt), "--pred", f"degraded={pred}", "--metrics", "fvd", "--protocol",
            "videogpt,stylegan-v", "--fvd-weights", f"videogpt={weights}", "--set-resamples", "20",
            "--out", str(out), "--no-plots", "--quiet"]
    assert main(args) == 0
    rows = pd.read_csv(out / "set_metrics.csv")
    videogpt = rows[(rows["protocol"] == "videogpt") & (rows["scope"] == "sequence")].iloc[0]
    with np.load(FEATURES) as stored:
        reference_real, reference_fake = stored["synth-64x64/real"], stored["synth-64x64/fake"]
    cached = sorted((out / "cache").rglob("i3d/*.npz"))
    assert len(cached) == 3  # clip 0 (shared), the ground truth's clip 1, the method's clip 1
    features = [np.load(path)["features"] for path in cached]
    for expected in (reference_real[0], reference_real[1], reference_fake[1]):  # VideoGPT's logits, within 1e-4
        assert min(np.abs(found - expected).max() for found in features) < 1e-4
    assert max(np.abs(expected).max() for expected in reference_real) > 1e-2
    expected = frechet_distance_features(np.stack([reference_real[0], reference_fake[1]]), reference_real[:2])
    assert videogpt["value"] == pytest.approx(expected, rel=1e-4)
    assert (videogpt["frames"], videogpt["gt_frames"], videogpt["resamples"]) == (2, 2, 20)
    details = json.loads(videogpt["details"])
    assert details["unit"] == "clip" and details["clips"] == 2 and details["dropped_frames"] == 0
    assert "non-overlapping 16-frame" in details["clips_from"]
    stylegan = rows[rows["protocol"] == "stylegan-v"]
    assert len(stylegan) == 2 and stylegan["missing"].str.contains("cabench weights --download fvd-i3d-stylegan-v").all()
    table = (out / "table1_sets.md").read_text()
    assert "(n=2/2 clips)" in table
    capsys.readouterr()
    mtimes = {path: path.stat().st_mtime_ns for path in cached}
    (out / "set_metrics.csv").unlink()
    assert main(args) == 0
    assert {path: path.stat().st_mtime_ns for path in cached} == mtimes  # resumed from the cache
    again = pd.read_csv(out / "set_metrics.csv")
    assert again.loc[again["protocol"] == "videogpt", "value"].iloc[0] == videogpt["value"]


def test_a_sequence_shorter_than_a_clip_gets_a_reason(weights, tmp_path):
    real, fake = load_case("synth-80x48")
    gt = _write_frames(tmp_path / "gt", real[0, :12])
    pred = _write_frames(tmp_path / "pred", fake[0, :12])
    out = tmp_path / "out"
    assert main(["eval", "--gt", str(gt), "--pred", f"m={pred}", "--metrics", "fvd", "--protocol", "videogpt",
                 "--fvd-weights", str(weights), "--out", str(out), "--no-plots", "--quiet"]) == 0
    rows = pd.read_csv(out / "set_metrics.csv")
    assert rows["value"].isna().all()
    assert rows["missing"].str.contains("at least 2 clips of 16 frames").all()
    assert rows["missing"].str.contains("12 evaluated frames, 0 clips").all()


def _tf_hub_layout(state: dict[str, torch.Tensor], scale: bool) -> torch.jit.ScriptModule:
    """A TorchScript module in the layout inferred for StyleGAN-V's file: TF-Hub's node names
    (``conv_3d.w``, ``batch_norm.beta`` / ``moving_mean`` / ``moving_variance``; no batch-norm scale
    unless ``scale``), the classifier ``conv_3d.w`` and ``conv_3d.b``; a trivial forward."""
    root = torch.nn.Module()
    for key in [k for k in state if k.endswith("conv3d.weight")]:
        unit = key[: -len(".conv3d.weight")]
        node = root
        for part in unit.split("."):
            if not hasattr(node, part):
                node.add_module(part, torch.nn.Module())
            node = getattr(node, part)
        conv = torch.nn.Module()
        conv.register_parameter("w", torch.nn.Parameter(state[key]))
        if unit == "logits":
            conv.register_parameter("b", torch.nn.Parameter(state["logits.conv3d.bias"]))
        node.add_module("conv_3d", conv)
        if unit != "logits":
            norm = torch.nn.Module()
            if scale:
                norm.register_parameter("gamma", torch.nn.Parameter(state[f"{unit}.bn.weight"]))
            norm.register_parameter("beta", torch.nn.Parameter(state[f"{unit}.bn.bias"]))
            norm.register_buffer("moving_mean", state[f"{unit}.bn.running_mean"])
            norm.register_buffer("moving_variance", state[f"{unit}.bn.running_var"])
            node.add_module("batch_norm", norm)

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.i3d = inner

        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            return x

    return torch.jit.script(Wrapper(root))


def test_torchscript_layout_maps_every_tensor(tmp_path, state):
    state = {k: v + 0.5 if k.endswith("bn.weight") else v for k, v in state.items()}
    path = tmp_path / "i3d_torchscript.pt"
    _tf_hub_layout(state, scale=True).save(str(path))
    mapped = torchscript_state(path)
    assert set(mapped) == set(state) and all(torch.equal(mapped[k], state[k]) for k in state)
    _tf_hub_layout(state, scale=False).save(str(path))
    mapped = torchscript_state(path)
    assert torch.equal(mapped["Mixed_4b.b1b.bn.weight"], torch.ones(208))
    model = I3D()
    assert model.load_state_dict(mapped, strict=False).unexpected_keys == []
    broken = dict(state)
    broken["Mixed_5c.b0.conv3d.weight"] = torch.zeros(384, 800, 1, 1, 1)  # a 1x1x1 kernel of the wrong width
    _tf_hub_layout(broken, scale=False).save(str(path))
    with pytest.raises(WeightsUnusableError, match="wrong shape"):
        torchscript_state(path)
    torch.save(state, tmp_path / "state.pt")
    assert set(videogpt_state(tmp_path / "state.pt")) == set(state)
    with pytest.raises(WeightsUnusableError, match="not a TorchScript"):
        torchscript_state(tmp_path / "state.pt")


def test_stylegan_v_protocol_reproduces_the_stand_in_torchscript(tmp_path, state):
    """The stand-in for StyleGAN-V's file (``run_fvd_references.py stylegan-v-shim``: VideoGPT's network traced,
    eps 1e-3, the assumed rescale/resize call) gave these logits; the same tensors in TF-Hub's naming, read by
    the ``stylegan-v`` protocol, give them too (checks the plumbing, not StyleGAN-V's real file)."""
    from metrics.fvd import FVDMetric

    path = tmp_path / "i3d_torchscript.pt"
    _tf_hub_layout(state, scale=True).save(str(path))
    real, _ = load_case("synth-80x48")
    with np.load(FEATURES) as stored:
        expected = stored["stylegan-v-shim/synth-80x48/real"][:1]
    features = FVDMetric("stylegan-v", torch.device("cpu"), str(path), 0, 0).features(_clips(real[:1]))
    np.testing.assert_allclose(features, expected, atol=1e-4, rtol=0)


def test_stylegan_v_fid_equals_its_compute_fid():
    """FID under ``stylegan-v`` (covariances divided by n) equals StyleGAN-V's own ``compute_fid`` on the same
    Inception features (run outside the project: ``run_fvd_references.py stylegan-v-fid``), and differs from
    the n - 1 covariances of the other protocols by more than that tolerance."""
    values = INFO["stylegan_v_fid"]["values"]
    metric = SetMetric.__new__(SetMetric)  # the value step only: no weight file is read
    metric.name, metric.resamples, metric.seed, metric.input = "fid", 0, 0, INPUTS["stylegan-v"]
    with np.load(CALIBRATION / "set_features.npz") as stored:
        for case, expected in values.items():
            real, fake = stored[f"{case}/real"], stored[f"{case}/fake"]
            found = metric.value(fake, real).value
            assert found == pytest.approx(expected, rel=1e-4), case
            assert frechet_distance_features(fake, real) != pytest.approx(expected, rel=1e-3), case


def test_stylegan_v_has_fid_and_fvd_but_no_kid_of_frames():
    from metrics.setlevel import protocol_reason

    assert protocol_reason("fid", "stylegan-v") is None
    assert "only from a generator" in protocol_reason("kid", "stylegan-v")
    assert protocol_reason("kid", "torch-fidelity") is None
