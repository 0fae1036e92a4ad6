"""Adapter registry, folder adapters, INSTA renders, ConsistentAvatar rows, synthetic degradations."""

from __future__ import annotations

import sys
import types

import cv2
import numpy as np
import pytest

import baselines
from benchmark.datasets import open_dataset
from benchmark.datasets.synthetic import write_sequence
from benchmark.io import open_frames, write_frames
from metrics.errors import CabenchError, InputError


@pytest.fixture(scope="module")
def seq(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    write_sequence(out, frames=16, size=64, seed=1, progress=False)
    return open_dataset(out / "astronaut").sequences[0]


def test_registry_lists_and_validates():
    assert set(baselines.list_adapters()) >= {
        "insta", "diffusionrig", "sadtalker", "nha", "nerface", "imavatar", "pointavatar", "avatarmav",
        "maavatar", "consistentavatar", "degraded", "folder"}
    with pytest.raises(CabenchError, match="unknown adapter 'instaa' \\(did you mean 'insta'\\?\\)"):
        baselines.create_adapter("instaa")
    with pytest.raises(CabenchError, match="setting colour: unknown setting"):
        baselines.create_adapter("nha", path="x", colour="red")
    with pytest.raises(CabenchError, match="setting path: required"):
        baselines.create_adapter("nerface")


def test_rows_are_the_papers_names():
    rows = {key: baselines.create_adapter(key, path="x").name
            for key in ("nha", "nerface", "imavatar", "pointavatar", "avatarmav", "maavatar")}
    assert rows == {"nha": "NHA", "nerface": "NeRFace", "imavatar": "IMAvatar", "pointavatar": "PointAvatar",
                    "avatarmav": "MAAvatar", "maavatar": "MAAvatar"}
    assert baselines.create_adapter("insta").name == "INSTA"
    assert baselines.create_adapter("nha", path="x", name="NHA (ours rerun)").name == "NHA (ours rerun)"
    assert baselines.create_adapter("consistentavatar", outputs="x", ablation="wo_lcm").name == "ConsistentAvatar w/o LCM"


def test_folder_adapter_maps_one_based_names_to_frame_ids(seq, tmp_path):
    test_ids = seq.splits["test"]
    gt = seq.frames.read(test_ids)
    write_frames(tmp_path / seq.name / "rgb", gt.rgb, ids=[i + 1 for i in test_ids], digits=1)
    adapter = baselines.create_adapter("imavatar", path=str(tmp_path / "{sequence}" / "rgb"), id_offset=1)
    source_output = adapter.outputs(seq)
    source = source_output.frames
    assert source.frame_ids == test_ids
    np.testing.assert_array_equal(source.read(test_ids).rgb, gt.rgb)
    assert source_output.alignment["id_offset"] == 1

    (tmp_path / seq.name / "rgb" / f"{test_ids[-1] + 2}.png").write_bytes((tmp_path / seq.name / "rgb" / f"{test_ids[0] + 1}.png").read_bytes())
    with pytest.raises(InputError, match="5 files match"):
        adapter.outputs(seq)
    (tmp_path / seq.name / "rgb" / f"{test_ids[1] + 1}.png").unlink()
    with pytest.raises(InputError, match=f"{test_ids[1] + 1}.png"):
        adapter.outputs(seq)


def test_insta_reads_test_renders_by_index(seq):
    adapter = baselines.create_adapter("insta")
    source_output = adapter.outputs(seq)
    source = source_output.frames
    test_ids = seq.splits["test"]
    assert source.frame_ids == test_ids
    proxy = open_frames(seq.extras["stage1_rgb"]).read(test_ids)  # the overlay holds the proxy's test frames
    np.testing.assert_array_equal(source.read(test_ids).rgb, proxy.rgb)
    assert source.read(test_ids[:1]).rgb[0, 0, 0].tolist() == [255, 255, 255]
    from benchmark.evaluation import evaluate

    scores = evaluate(pred=source, gt=seq.split_frames("test"), mask=seq.split_mask("test"), progress=False).frames
    assert scores["frame"].tolist() == test_ids and 15 < scores["psnr"].mean() < 40  # a blurry proxy, not a copy
    rgb, normal = adapter.stage1(seq)
    assert rgb.frame_ids == seq.frame_ids and normal.frame_ids == seq.frame_ids
    with pytest.raises(CabenchError, match="test split only"):
        baselines.create_adapter("insta", split="train").outputs(seq)


def test_insta_count_mismatch_is_an_error(seq, tmp_path):
    folder = tmp_path / "overlay"
    write_frames(folder, seq.frames.read(seq.splits["test"][:-1]).rgb, ids=range(3))
    with pytest.raises(InputError, match="00003.png"):
        baselines.create_adapter("insta", path=str(folder)).outputs(seq)
    write_frames(folder, seq.frames.read(seq.splits["test"] * 2).rgb[:6], ids=range(6))
    with pytest.raises(InputError, match="6 files match"):
        baselines.create_adapter("insta", path=str(folder)).outputs(seq)


def _fake_reference(monkeypatch, calls, result=None):
    module = types.ModuleType("reference")

    def load_pipeline(checkpoint, device="auto", dtype=None, ablation=None, progress=True):
        calls.append(dict(load=checkpoint, device=device, dtype=dtype, ablation=ablation))
        return f"pipeline of {checkpoint}" + (f" ({ablation})" if ablation else "")

    def warm_up(pipeline, batch_size=8, scheduler="lcm"):
        calls.append(dict(warm_up=pipeline, batch_size=batch_size))

    def render_sequence(pipeline, rgb, normal, pose, expression, emotion=None, ablation=None, scheduler="lcm",
                        steps=None, seed=0, device="auto", batch_size=8, progress=False, across_processes=False,
                        ablation_mode="trained"):
        calls.append(dict(checkpoint=pipeline, rgb=rgb, normal=normal, pose=pose, expression=expression,
                          ablation=ablation, steps=steps, scheduler=scheduler, emotion=emotion,
                          ablation_mode=ablation_mode))
        return (255 - rgb) if result is None else result

    module.load_pipeline, module.warm_up, module.render_sequence = load_pipeline, warm_up, render_sequence
    monkeypatch.setitem(sys.modules, "reference", module)


def test_consistentavatar_renders_through_the_reference_contract(seq, monkeypatch):
    calls = []
    _fake_reference(monkeypatch, calls)
    adapter = baselines.create_adapter("consistentavatar", checkpoint="ckpt", ablation="wo_normal", steps=2,
                                       emotion="happy")
    test_ids = seq.splits["test"]
    out_output = adapter.outputs(seq)
    out = out_output.frames
    assert calls[0] == dict(load="ckpt", device="auto", dtype=None, ablation="wo_normal")  # the trained variant,
    assert calls[1] == dict(warm_up="pipeline of ckpt (wo_normal)", batch_size=8)  # loaded and warmed up first
    call = calls[2]
    assert call["emotion"] == "happy"  # one label, passed whole
    proxy = open_frames(seq.extras["stage1_rgb"]).read(test_ids).rgb
    np.testing.assert_array_equal(call["rgb"], proxy)
    assert call["normal"].shape == proxy.shape and call["pose"].shape == (4, 6)
    np.testing.assert_allclose(call["expression"], seq.annotation("expression", test_ids))
    assert (call["ablation"], call["steps"], call["checkpoint"]) == ("wo_normal", 2, "pipeline of ckpt (wo_normal)")
    assert call["ablation_mode"] == "trained" and out_output.alignment["ablation_mode"] == "trained"
    assert out.frame_ids == test_ids
    np.testing.assert_array_equal(out.read(test_ids).rgb, 255 - proxy)
    assert adapter.name == "ConsistentAvatar w/o normal" and out_output.alignment["rendered"]


def test_consistentavatar_errors(seq, monkeypatch):
    _fake_reference(monkeypatch, [], result=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(CabenchError, match="expected uint8 \\(4, H, W, 3\\)"):
        baselines.create_adapter("consistentavatar", checkpoint="c").outputs(seq)
    monkeypatch.setitem(sys.modules, "reference", types.ModuleType("reference"))
    with pytest.raises(CabenchError, match="reference.render_sequence"):
        baselines.create_adapter("consistentavatar", checkpoint="c").outputs(seq)
    with pytest.raises(CabenchError, match="ablation 'wo_x'"):
        baselines.create_adapter("consistentavatar", checkpoint="c", ablation="wo_x")
    with pytest.raises(CabenchError, match="setting emotion: expected a string"):
        baselines.create_adapter("consistentavatar", checkpoint="c", emotion=["happy", "sad"])
    with pytest.raises(CabenchError, match="ablation_mode 'zeros'"):
        baselines.create_adapter("consistentavatar", checkpoint="c", ablation="wo_normal", ablation_mode="zeros")


def test_consistentavatar_zero_input_switch_is_its_own_row(seq, monkeypatch):
    calls = []
    _fake_reference(monkeypatch, calls)
    adapter = baselines.create_adapter("consistentavatar", checkpoint="c", ablation="wo_normal",
                                       ablation_mode="zero-input")
    assert adapter.name == "ConsistentAvatar w/o normal (zero-input switch)"
    output = adapter.outputs(seq)
    assert calls[0] == dict(load="c", device="auto", dtype=None, ablation=None)  # the full model, inputs switched
    assert output.alignment["ablation_mode"] == "zero-input" and calls[2]["ablation_mode"] == "zero-input"


def test_consistentavatar_reads_stored_outputs(seq, tmp_path):
    ids = seq.splits["test"]
    write_frames(tmp_path / "renders", seq.frames.read(ids).rgb, ids=ids)
    out_output = baselines.create_adapter("consistentavatar", outputs=str(tmp_path / "renders")).outputs(seq)
    out = out_output.frames
    np.testing.assert_array_equal(out.read(ids).rgb, seq.frames.read(ids).rgb)


def _degraded(seq, kind, **settings):
    adapter = baselines.create_adapter("degraded", degradation=kind, **settings)
    assert adapter.name.startswith("Synthetic: ")
    source_output = adapter.outputs(seq)
    source = source_output.frames
    assert source_output.alignment["synthetic"] is True and source.frame_ids == seq.splits["test"]
    return source.read(source.frame_ids)


def test_degradations_are_deterministic_per_seed(seq):
    for kind in ("flicker", "jitter"):
        a, b = _degraded(seq, kind, seed=5), _degraded(seq, kind, seed=5)
        np.testing.assert_array_equal(a.rgb, b.rgb)
        assert not np.array_equal(a.rgb, _degraded(seq, kind, seed=6).rgb)


def test_oversmooth_and_flicker(seq):
    gt = seq.frames.read(seq.splits["test"])
    blurred = _degraded(seq, "oversmooth", strength=1.5)
    np.testing.assert_array_equal(blurred.rgb[0], cv2.GaussianBlur(gt.rgb[0], (0, 0), 1.5))
    flicker = _degraded(seq, "flicker", strength=0.1, seed=2)
    head = gt.alpha > 0.99
    ratios = [f[h].mean() / g[h].mean() for f, g, h in zip(flicker.rgb.astype(float), gt.rgb, head)]
    gains = [1 + 0.1 * np.random.default_rng([2, i]).standard_normal() for i in seq.splits["test"]]
    np.testing.assert_allclose(ratios, gains, atol=0.02)
    assert np.all(flicker.rgb[~(gt.alpha > 0)] == 255)  # background stays white


def test_jitter_shift_is_recovered_by_phase_correlation(seq):
    gt = seq.frames.read(seq.splits["test"])
    shaken = _degraded(seq, "jitter", strength=2.0, seed=3)
    for frame, g, s in zip(seq.splits["test"], gt.rgb, shaken.rgb):
        dx, dy = 2.0 * np.random.default_rng([3, frame]).standard_normal(2)
        gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float64) for im in (g, s)]
        (sx, sy), _ = cv2.phaseCorrelate(*gray)
        assert abs(sx - dx) < 0.5 and abs(sy - dy) < 0.5


def test_expression_lag_rerenders_pose_now_expression_before(seq):
    gt = seq.frames.read(seq.splits["test"])
    same = _degraded(seq, "expression_lag", strength=0)
    assert np.abs(same.rgb.astype(int) - gt.rgb).max() <= 1  # lag 0 reproduces the ground truth
    lagged = _degraded(seq, "expression_lag", strength=8)
    top = slice(0, gt.alpha.shape[1] // 2)  # above the mouth the silhouette depends on the pose only
    assert np.abs(lagged.alpha[:, top] - gt.alpha[:, top]).max() < 0.02  # the head pose is current
    assert np.abs(lagged.rgb.astype(int) - gt.rgb).max() > 20  # the face is not


def test_expression_lag_on_real_data_lags_whole_frames(seq):
    from dataclasses import replace

    real = replace(seq, kind="insta")
    adapter = baselines.create_adapter("degraded", degradation="expression_lag", strength=2)
    out_output = adapter.outputs(real)
    out = out_output.frames
    ids = seq.splits["test"]
    np.testing.assert_array_equal(out.read(ids).rgb, seq.frames.read([i - 2 for i in ids]).rgb)


def test_colour_drift_grows_to_its_strength(seq):
    gt = seq.frames.read(seq.splits["test"])
    drift = _degraded(seq, "colour_drift", strength=0.1, seed=4)
    direction = np.random.default_rng([4, 7]).standard_normal(3)
    direction /= np.linalg.norm(direction)
    head = gt.alpha[-1] > 0.99
    last = seq.frame_ids[-1]
    assert seq.splits["test"][-1] == last
    ratio = drift.rgb[-1][head].astype(float).mean(axis=0) / gt.rgb[-1][head].mean(axis=0)
    np.testing.assert_allclose(ratio, 1 + 0.1 * direction, atol=0.02)
    with pytest.raises(CabenchError, match="degradation 'blur'"):
        baselines.create_adapter("degraded", degradation="blur")
