"""render_sequence and `cabench infer` with the shipped tiny checkpoint (the demo's offline path)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_helpers import make_sequence

from metrics.errors import CabenchError, InputError, WeightsMissingError
from reference import render_sequence
from reference.data import load_sequence
from reference.render import TINY_CHECKPOINT


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    path = make_sequence(tmp_path_factory.mktemp("render") / "seq", frames=4)
    return path, load_sequence(path, "all")


def test_shipped_checkpoint_is_small_safetensors_that_a_wheel_carries():
    import tomllib
    from pathlib import Path, PurePosixPath

    files = [p for p in TINY_CHECKPOINT.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert len(weights) >= 7 and not [p for p in files if p.suffix in (".bin", ".pt", ".pth")]
    assert sum(p.stat().st_size for p in weights) <= 40 * 2**20  # the budget for the model and its ablations
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["reference"]
    package = TINY_CHECKPOINT.parents[1]
    for file in files:  # every file of the checkpoint is package data (a glob part matches one path part)
        path = PurePosixPath(file.relative_to(package).as_posix())
        assert any(len(path.parts) == len(PurePosixPath(p).parts) and path.match(p) for p in patterns), path


def test_render_sequence_shapes_seed_and_batch_independence(sequence):
    _, data = sequence
    args = (data.rgb[:3], data.normal[:3], data.pose[:3], data.expression[:3])
    a = render_sequence("tiny", *args, steps=2, seed=1, batch_size=3)
    b = render_sequence("tiny", *args, steps=2, seed=1, batch_size=2)  # batches of 2 and 1
    assert a.shape == (3, 64, 64, 3) and a.dtype == np.uint8
    # per-frame generators: the batch split changes only float rounding (batched kernels), not the noise
    diff = np.abs(a.astype(int) - b)
    assert diff.max() <= 2 and diff.mean() < 0.05
    c = render_sequence("tiny", *args, steps=2, seed=2, batch_size=3)
    assert not np.array_equal(a, c)
    # another input size: the model runs at 64 px, the output comes back at the input size
    big = np.repeat(np.repeat(data.rgb[:1], 2, 1), 2, 2)
    out = render_sequence("tiny", big, big, data.pose[:1], data.expression[:1], steps=1,
                          emotion=["happy"], ablation="wo_normal", ablation_mode="zero-input")
    assert out.shape == (1, 128, 128, 3)


def test_one_emotion_label_applies_to_every_frame(sequence):
    _, data = sequence
    args = (data.rgb, data.normal, data.pose, data.expression)
    happy = render_sequence("tiny", *args, steps=1, emotion="happy")
    np.testing.assert_array_equal(happy, render_sequence("tiny", *args, steps=1, emotion=["happy"] * len(data)))
    # the string is one label, not its letters
    assert not np.array_equal(happy, render_sequence("tiny", *args, steps=1, emotion=list("happ")))


def test_render_sequence_bad_inputs(sequence, tmp_path):
    _, data = sequence
    args = (data.rgb, data.normal, data.pose, data.expression)
    with pytest.raises(InputError, match="expression"):
        render_sequence("tiny", data.rgb, data.normal, data.pose, data.expression[:, :10])
    with pytest.raises(InputError, match="pose has 3 frames"):
        render_sequence("tiny", data.rgb, data.normal, data.pose[:3], data.expression)
    with pytest.raises(CabenchError, match="ablation"):
        render_sequence("tiny", *args, ablation="wo_everything")
    with pytest.raises(CabenchError, match="ablation_mode"):
        render_sequence("tiny", *args, ablation="wo_normal", ablation_mode="zeros")
    with pytest.raises(CabenchError, match="unknown scheduler"):
        render_sequence("tiny", *args, scheduler="warp")
    with pytest.raises(InputError, match="emotion has 2 labels"):
        render_sequence("tiny", *args, emotion=["happy", "sad"])
    with pytest.raises(WeightsMissingError, match="model_index.json"):
        render_sequence(tmp_path, *args)
    bad = data.pose.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        render_sequence("tiny", data.rgb, data.normal, bad, data.expression)


def test_cli_infer_writes_frames(sequence, tmp_path, capsys):
    from benchmark.cli import main

    path, _ = sequence
    assert main(["infer", "--data", str(path), "--output", str(tmp_path / "out"), "--steps", "1", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00002.png", "00003.png"]  # the test split
    assert main(["infer", "--data", str(tmp_path / "nope"), "--output", str(tmp_path / "o2")]) == 2
    assert "nope" in capsys.readouterr().err
    # an ablation renders the checkpoint's trained variant (one trained for a step into a copy of the
    # shipped checkpoint); a folder without it is one clear error, unless the inference-time switch is asked for
    import shutil

    from reference.training import TrainOptions, train

    path, data = sequence
    trained = shutil.copytree(TINY_CHECKPOINT, tmp_path / "trained")
    train(TrainOptions(stage="stage3", ablation="wo_normal", stage3_tsd="ground-truth", steps=1, batch_size=2,
                       progress=False), data, trained)
    assert main(["infer", "--checkpoint", str(trained), "--data", str(path), "--output", str(tmp_path / "o3"),
                 "--steps", "1", "--quiet", "--ablation", "wo_normal"]) == 0
    assert len(list((tmp_path / "o3").iterdir())) == 2
    bare = shutil.copytree(TINY_CHECKPOINT, tmp_path / "bare", ignore=shutil.ignore_patterns("ablations"))
    args = ["infer", "--checkpoint", str(bare), "--data", str(path), "--steps", "1", "--quiet", "--ablation", "wo_normal"]
    assert main([*args, "--output", str(tmp_path / "o4")]) == 2
    assert "cabench train stage3 --ablation wo_normal" in capsys.readouterr().err
    assert main([*args, "--output", str(tmp_path / "o5"), "--ablation-mode", "zero-input"]) == 0


def test_callers_with_different_samplers_share_the_cached_pipeline_without_affecting_each_other(sequence):
    """The sampler is each call's own: the one cached pipeline's scheduler is never replaced, so renders
    with different samplers, interleaved, give what each gives alone. (When render_sequence set the
    sampler on the shared pipeline, a w/o-LCM render after an Euler one sampled DDIM with
    clip_sample=True: the Euler config had dropped the key, and DDIM was made from it.)"""
    from reference.render import load_pipeline

    _, data = sequence
    args = (data.rgb[:2], data.normal[:2], data.pose[:2], data.expression[:2])
    pipe = load_pipeline("tiny", progress=False)  # what render_sequence("tiny", ...) loads (cached)
    own = pipe.scheduler
    ddim = render_sequence("tiny", *args, ablation="wo_lcm", steps=2, batch_size=2)  # DDIM: the undistilled row
    euler = render_sequence("tiny", *args, scheduler="euler", steps=2, batch_size=2)
    assert not np.array_equal(ddim, euler)  # the sampler is used
    np.testing.assert_array_equal(render_sequence("tiny", *args, ablation="wo_lcm", steps=2, batch_size=2), ddim)
    assert load_pipeline("tiny", progress=False) is pipe and pipe.scheduler is own
