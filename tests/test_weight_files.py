"""Weight files that are there but unusable: each makes its metric missing with one line naming the file
and why, every other metric still comes out, and `cabench weights` says "found but unusable".

The files are made here: a good state dict has torchvision's (or DECA's) names and shapes; its
tensors are zero-stride views of one element, so a ResNet-50-sized state dict saves in a few
kilobytes. The expected names and shapes come from torchvision's own models, built here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark import evaluate
from benchmark.cli import main
from benchmark.io import write_frames
from metrics import registry, weights
from metrics.errors import WeightsUnusableError


def _cheap(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: torch.zeros((), dtype=value.dtype).expand(value.shape) for key, value in state.items()}


def _alexnet_features() -> dict[str, torch.Tensor]:
    import torchvision

    return _cheap({k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items() if k.startswith("features.")})


def _raft_small() -> dict[str, torch.Tensor]:
    from torchvision.models.optical_flow import raft_small

    return _cheap(raft_small(weights=None).state_dict())


def _deca() -> dict[str, torch.Tensor]:
    from metrics.face import DecaEncoder

    return _cheap(DecaEncoder().state_dict())


# weight key: (good state, how the file wraps it, the metric, its options pointing at a file)
KINDS = {
    "alexnet": (_alexnet_features, lambda s: s, "lpips", lambda p: {"backbone_weights": str(p)}),
    "raft_small": (_raft_small, lambda s: s, "tof", lambda p: {"flow": "raft_small", "flow_weights": str(p)}),
    "deca": (_deca, lambda s: {"E_flame": s, "E_detail": {}}, "deca_pe", lambda p: {"deca_weights": str(p)}),
}


def _bad_file(kind: str, how: str, folder: Path) -> Path:
    make_state, wrap, _, _ = KINDS[kind]
    path = folder / f"{kind}-{how}.pth"
    if how == "corrupt":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        torch.save(wrap(make_state()), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "wrong keys":
        state = make_state()
        first = next(iter(state))
        state[first.replace(".", "_renamed.", 1)] = state.pop(first)
        torch.save(wrap(state), path)
    elif how == "wrong shape":
        state = make_state()
        last = [k for k in state if k.endswith("weight")][-1]
        state[last] = torch.zeros(3, 3)
        torch.save(wrap(state), path)
    elif how == "not a state dict":
        torch.save([1, 2, 3], path)
    elif how == "folder":
        path.mkdir()
    return path


EXPECTED = {
    "corrupt": "corrupt or truncated",
    "empty": "corrupt or truncated",
    "truncated": "corrupt or truncated",
    "wrong keys": "wrong keys",
    "wrong shape": "wrong shape",
    "not a state dict": "holds a list|no 'E_flame' entry",
    "folder": "is a folder",
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("how", list(EXPECTED))
def test_an_unusable_file_makes_its_metric_missing_with_one_line_naming_it(tmp_path, torch_home, kind, how):
    path = _bad_file(kind, how, tmp_path)
    _, _, metric, options = KINDS[kind]
    reason = registry.get(metric).unavailable_reason(options(path))
    assert reason is not None and str(path) in reason and "\n" not in reason
    assert re.search(EXPECTED[how], reason), reason
    with pytest.raises(WeightsUnusableError):
        weights.usable_weight(kind, path)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_good_file_of_the_right_names_and_shapes_passes(tmp_path, torch_home, kind):
    make_state, wrap, metric, options = KINDS[kind]
    path = tmp_path / "good.pth"
    torch.save(wrap(make_state()), path)
    assert weights.usable_weight(kind, path) == path
    if metric != "deca_pe" or registry.get("lmd").unavailable_reason() is None:  # DECA also needs dlib
        assert registry.get(metric).unavailable_reason(options(path)) is None


def test_an_unusable_file_in_the_search_folders_is_reported_not_skipped(tmp_path, torch_home, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    bad = folder / "alexnet-owt-7be5be79.pth"
    bad.write_bytes(b"\x00" * 100)
    monkeypatch.setenv("CABENCH_WEIGHTS", str(folder))
    reason = registry.get("lpips").unavailable_reason()
    assert str(bad) in reason and "corrupt or truncated" in reason
    bad.unlink()
    bad.mkdir()  # a folder with the file's name, where a file is expected
    assert "is a folder" in registry.get("lpips").unavailable_reason()


def test_each_file_is_checked_once_per_size_and_modification_time(tmp_path, monkeypatch):
    calls = []
    path = tmp_path / "model.pth"
    path.write_bytes(b"one")
    monkeypatch.setitem(weights._KNOWN, "counted", weights.WeightFile("counted", "model.pth", "a test", "here",
                                                                      check=calls.append))
    for _ in range(3):
        weights.usable_weight("counted", path)
    assert len(calls) == 1
    path.write_bytes(b"other size")
    weights.usable_weight("counted", path)
    assert len(calls) == 2
    os.utime(path, ns=(1, 1))  # the same size, another modification time
    weights.usable_weight("counted", path)
    assert len(calls) == 3


@pytest.fixture
def frames(tmp_path, photos):
    gt = np.stack([photos["astronaut"][40 + 4 * i : 104 + 4 * i, 180:244] for i in range(3)])
    write_frames(tmp_path / "gt", gt)
    write_frames(tmp_path / "pred", np.ascontiguousarray(gt[:, ::-1]))
    return tmp_path


@pytest.mark.parametrize("how", ["truncated", "text"])
def test_eval_with_an_unusable_trunk_in_cabench_weights_keeps_every_other_metric(frames, torch_home, monkeypatch, capsys,
                                                                                 how):
    folder = frames / "weights"
    folder.mkdir()
    bad = folder / "alexnet-owt-7be5be79.pth"
    if how == "text":  # torch's weights-only unpickler raised KeyError: 101 on this, through weights and eval
        bad.write_text("hello this is text\n")
    else:
        _bad_file("alexnet", "truncated", folder).rename(bad)
    monkeypatch.setenv("CABENCH_WEIGHTS", str(folder))
    assert main(["weights"]) == 0
    assert f"found but unusable: {bad}: " in capsys.readouterr().out
    args = ["eval", "--gt", str(frames / "gt"), "--pred", f"a={frames / 'pred'}", "--metrics", "l2,psnr,lpips",
            "--out", str(frames / "out"), "--quiet"]
    assert main(args) == 0
    per_frame = pd.read_csv(frames / "out" / "per_frame.csv")
    assert {"l2", "psnr"} <= set(per_frame.columns) and "lpips" not in per_frame.columns and len(per_frame) == 3
    missing = pd.read_csv(frames / "out" / "missing.csv")
    assert list(missing["metric"]) == ["lpips"] and str(bad) in missing["reason"].iloc[0]
    capsys.readouterr()
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "corrupt or truncated" in err[0] and err[0].startswith("cabench: error: --strict")


def test_weights_command_says_found_but_unusable(tmp_path, torch_home, capsys):
    bad = torch_home / "hub" / "checkpoints" / "raft_small_C_T_V2-01064c6d.pth"
    torch.save({"nothing": torch.zeros(1)}, bad)
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert f"found but unusable: {bad}: unusable as" in out and "wrong keys" in out


def test_run_saves_every_part_when_a_weight_file_is_unusable(tmp_path, torch_home):
    from benchmark.datasets.synthetic import write_sequence

    write_sequence(tmp_path / "data", frames=8, size=64, progress=False)
    bad = _bad_file("alexnet", "wrong shape", tmp_path)
    config = tmp_path / "run.toml"
    config.write_text(f"""
[run]
out = "out"
metrics = ["l2", "psnr", "lpips"]
options = {{ backbone_weights = "{bad}" }}

[[datasets]]
path = "data"

[[methods]]
name = "proxy"
frames = "{{root}}/stage1/rgb"
""")
    assert main(["run", str(config), "--quiet", "--no-plots"]) == 0
    per_frame = pd.read_csv(tmp_path / "out" / "per_frame.csv")
    assert {"l2", "psnr"} <= set(per_frame.columns) and len(per_frame) == 2
    missing = pd.read_csv(tmp_path / "out" / "missing.csv")
    assert list(missing["metric"]) == ["lpips"] and str(bad) in missing["reason"].iloc[0]
    assert "wrong shape" in missing["reason"].iloc[0]


def test_a_bad_deca_file_is_reported_even_when_no_face_is_found(tmp_path, torch_home):
    flat = np.full((2, 64, 64, 3), 128, np.uint8)  # no face for dlib to find
    bad = _bad_file("deca", "corrupt", tmp_path)
    result = evaluate(pred=flat, gt=flat, metrics=["l2", "deca_pe"], deca_weights=str(bad), progress=False)
    if registry.get("lmd").unavailable_reason() is None:
        assert str(bad) in result.missing["deca_pe"] and "\n" not in result.missing["deca_pe"]
    assert "l2" in result.frames.columns


@pytest.mark.parametrize("key, metric", [("dlib_landmarks68", "lmd"), ("dlib_face_recognition", "csim")])
def test_a_corrupt_dlib_model_makes_the_face_metrics_missing(tmp_path, torch_home, monkeypatch, key, metric):
    pytest.importorskip("dlib")
    folder = tmp_path / "weights"
    folder.mkdir()
    bad = folder / weights.get_weight(key).filename
    bad.write_bytes(b"not a model" * 10)
    monkeypatch.setenv("CABENCH_WEIGHTS", str(folder))
    reason = registry.get(metric).unavailable_reason()
    assert reason is not None and str(bad) in reason and "not a dlib model file" in reason
