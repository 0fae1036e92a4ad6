"""The runner: resume after a kill gives the same numbers, reuse, --force, fingerprints, shards, missing metrics."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmark import runner
from benchmark.config import DatasetConfig, MethodConfig, RunConfig
from benchmark.io import ArrayFrames, open_frames, write_frames

FRAMES = 8


@pytest.fixture(scope="module")
def videos(photos, tmp_path_factory) -> dict:
    """A moving crop of a real photo (ground truth) and two methods' outputs written as PNG folders."""
    root = tmp_path_factory.mktemp("videos")
    photo = photos["astronaut"]
    gt = np.stack([cv2.resize(photo[20 + 3 * i: 260 + 3 * i, 100 + 2 * i: 340 + 2 * i], (64, 64),
                              interpolation=cv2.INTER_AREA) for i in range(FRAMES)])
    rng = np.random.default_rng(0)
    noisy = np.clip(gt + rng.normal(0, 6, gt.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in gt])
    for name, frames in (("noisy", noisy), ("blurred", blurred)):
        write_frames(root / name / "seq", frames, list(range(FRAMES)))
    return {"root": root, "gt": gt}


def _config(videos, out: Path, **changes) -> RunConfig:
    methods = tuple(MethodConfig(name, frames=str(videos["root"] / name / "{sequence}")) for name in ("noisy", "blurred"))
    config = RunConfig(datasets=(DatasetConfig("synthetic", "in-memory"),), methods=methods,
                       metrics=("l2", "psnr", "ssim"), out=str(out), batch_size=4, split="all")
    return dataclasses.replace(config, **changes)


def _pairs(config: RunConfig, videos) -> list[runner.Pair]:
    sequence = SimpleNamespace(name="seq", frames=ArrayFrames(videos["gt"], name="gt"), mask=None, annotations={},
                               splits={}, root=None)
    return [runner.Pair(config.datasets[0], sequence, method) for method in config.methods]


def _run(config, videos, **kwargs) -> runner.Runner:
    work = runner.Runner(config, progress=False, log=lambda m: None, **kwargs)
    work.run(_pairs(config, videos))
    return work


def _merged(config, videos) -> pd.DataFrame:
    return runner.merge(config, _pairs(config, videos), list(config.metrics))[0]


def _killed_after(stores: int, config, videos, monkeypatch) -> None:
    """Run ``config`` and interrupt it (as Ctrl-C or a kill would) after ``stores`` part writes."""
    calls = {"n": 0}
    original = runner.Part.add

    def dying_add(self, chunk, protocol):
        calls["n"] += 1
        if calls["n"] > stores:
            raise KeyboardInterrupt
        original(self, chunk, protocol)

    monkeypatch.setattr(runner.Part, "add", dying_add)
    with pytest.raises(KeyboardInterrupt):
        _run(config, videos)
    monkeypatch.setattr(runner.Part, "add", original)


def test_result_table_layout_and_values(videos, tmp_path):
    config = _config(videos, tmp_path / "run")
    _run(config, videos)
    table = _merged(config, videos)
    assert list(table.columns) == ["dataset", "sequence", "method", "frame", "protocol", "l2", "psnr", "ssim"]
    assert len(table) == 2 * FRAMES and set(table["protocol"]) == {"canonical"}
    noisy = table[table["method"] == "noisy"].sort_values("frame")
    pred = open_frames(str(videos["root"] / "noisy" / "seq")).read(list(range(FRAMES))).rgb
    mse = ((pred.astype(np.float64) / 255 - videos["gt"].astype(np.float64) / 255) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(noisy["l2"].to_numpy(), mse, rtol=1e-5)
    np.testing.assert_allclose(noisy["psnr"].to_numpy(), 10 * np.log10(1 / mse), rtol=1e-5)


def test_killed_run_resumes_to_the_same_numbers_and_reuses_what_was_stored(videos, tmp_path, monkeypatch):
    reference = _config(videos, tmp_path / "uninterrupted")
    _run(reference, videos)
    expected = _merged(reference, videos)

    config = _config(videos, tmp_path / "killed")
    _killed_after(4, config, videos, monkeypatch)  # mid second batch of the first method: l2 has 8 frames, psnr, ssim 4
    folder = Path(config.out) / "parts" / "synthetic" / "seq" / "noisy"
    assert list(pd.read_csv(folder / "l2.csv")["frame"]) == list(range(8))
    assert list(pd.read_csv(folder / "psnr.csv")["frame"]) == [0, 1, 2, 3]

    resumed = _run(config, videos)
    assert resumed.reused == 3 * 4  # l2, psnr, ssim of the 4 stored frames
    assert resumed.computed == 3 * (2 * FRAMES - 4)
    pd.testing.assert_frame_equal(_merged(config, videos), expected)

    again = _run(config, videos)
    assert again.computed == 0 and again.reused == 3 * 2 * FRAMES
    forced = _run(config, videos, force=True)
    assert forced.computed == 3 * 2 * FRAMES and forced.reused == 0
    pd.testing.assert_frame_equal(_merged(config, videos), expected)


def test_a_changed_setting_is_recomputed_not_reused(videos, tmp_path):
    config = _config(videos, tmp_path / "run")
    _run(config, videos)
    swapped = dataclasses.replace(config, methods=(dataclasses.replace(config.methods[0], frames=config.methods[1].frames),
                                                   config.methods[1]))
    work = _run(swapped, videos)
    assert work.computed == 3 * FRAMES and work.reused == 3 * FRAMES  # only the changed method's numbers
    table = _merged(swapped, videos)
    np.testing.assert_allclose(table[table["method"] == "noisy"]["l2"].to_numpy(),
                               table[table["method"] == "blurred"]["l2"].to_numpy())
    more = dataclasses.replace(swapped, metrics=("l2", "psnr", "ssim", "l1"))
    assert _run(more, videos).computed == 2 * FRAMES  # only the added metric


def test_shards_merge_into_the_single_run(videos, tmp_path):
    single = _config(videos, tmp_path / "single")
    _run(single, videos)
    sharded = _config(videos, tmp_path / "sharded")
    for index in range(2):
        work = runner.Runner(sharded, progress=False, log=lambda m: None)
        work.run(_pairs(sharded, videos), shard=(index, 2))
        assert work.computed == 3 * FRAMES  # one (sequence, method) pair each
    pd.testing.assert_frame_equal(_merged(sharded, videos), _merged(single, videos))


def test_merge_refuses_an_unfinished_run(videos, tmp_path):
    config = _config(videos, tmp_path / "run")
    work = runner.Runner(config, progress=False, log=lambda m: None)
    work.run(_pairs(config, videos), shard=(0, 2))
    with pytest.raises(runner.CabenchError, match="blurred.*not complete|not complete"):
        _merged(config, videos)


def test_missing_metric_is_recorded_with_its_reason_and_outputs_are_written(videos, tmp_path, torch_home):
    config = _config(videos, tmp_path / "run", metrics=("l2", "psnr", "ssim", "lpips"))
    _run(config, videos)
    table, missing = runner.merge(config, _pairs(config, videos), list(config.metrics))
    assert "lpips" not in table.columns
    assert list(missing["metric"]) == ["lpips", "lpips"]
    assert missing["reason"].str.contains("alexnet-owt-7be5be79.pth").all()
    state = json.loads((Path(config.out) / "parts" / "synthetic" / "seq" / "noisy" / "lpips.json").read_text())
    assert not state["complete"] and "alexnet" in state["missing"]
    files = runner.write_outputs(Path(config.out), config, table, missing, plots=False, report=False)
    names = {f.name for f in files}
    assert {"per_frame.csv", "summary.csv", "missing.csv", "config.toml", "table1.md", "table1.tex", "table1.csv"} <= names
    table1 = (Path(config.out) / "table1.md").read_text()
    assert "| missing |" in table1 and "LPIPS: missing (" in table1
    summary = pd.read_csv(Path(config.out) / "summary.csv")
    assert set(summary["metric"]) == {"l2", "psnr", "ssim"} and (summary["count"] == FRAMES).all()


def test_samples_and_slugs(videos, tmp_path):
    config = _config(videos, tmp_path / "run")
    _run(config, videos)
    folder = Path(config.out) / "parts" / "synthetic" / "seq"
    strip = cv2.imread(str(folder / "noisy" / "samples.png"))
    assert strip.shape == (runner.SAMPLE_HEIGHT, 4 * runner.SAMPLE_HEIGHT, 3)
    assert (folder / "gt_samples.png").exists()
    assert runner.sample_ids(list(range(10))) == [0, 3, 6, 9]
    assert runner.slug("INSTA") == "INSTA"
    assert runner.slug("w/o LCM") != runner.slug("w/o_LCM") and "/" not in runner.slug("w/o LCM")


def test_a_temporal_metric_killed_midway_is_recomputed_from_the_start(videos, tmp_path, monkeypatch):
    from metrics import registry

    if "flow_gap" not in registry.list_metrics():
        pytest.skip("the temporal metrics are not installed")
    reference = _config(videos, tmp_path / "uninterrupted", metrics=("psnr", "flow_gap"))
    _run(reference, videos)
    expected = _merged(reference, videos)
    assert expected["flow_mag_gt"].notna().sum() == 2 * (FRAMES - 1)  # every frame but the first of each pair

    config = _config(videos, tmp_path / "killed", metrics=("psnr", "flow_gap"))
    _killed_after(2, config, videos, monkeypatch)
    resumed = _run(config, videos)
    assert resumed.reused == 4  # psnr of the first batch; flow_gap starts again from frame 0
    pd.testing.assert_frame_equal(_merged(config, videos), expected)


def test_a_run_whose_every_metric_is_missing_still_reports(videos, tmp_path, torch_home):
    config = _config(videos, tmp_path / "run", metrics=("lpips",))
    _run(config, videos)
    table, missing = runner.merge(config, _pairs(config, videos), list(config.metrics))
    assert table.empty and len(missing) == 2
    runner.write_outputs(Path(config.out), config, table, missing, plots=True, report=True)
    table1 = (Path(config.out) / "table1.md").read_text()
    assert table1.count("| missing |") == 2 and "LPIPS: missing (" in table1
    assert "alexnet" in (Path(config.out) / "report.html").read_text()
