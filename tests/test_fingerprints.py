"""Stored results cannot go stale: new frame contents, a new cabench version or a metric's new
implementation version recompute exactly the parts they affect; the working directory does not."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest

from benchmark import runner
from benchmark.cli import main
from benchmark.config import DatasetConfig, MethodConfig, RunConfig
from benchmark.io import write_frames
from reports.publish import publish
from tests.run_helpers import config, write_videos

PARTS = {f"synthetic/seq/{method}/canonical/{metric}" for method in ("noisy", "blurred") for metric in ("l2", "psnr", "ssim")}


@pytest.fixture
def videos(tmp_path) -> dict:
    return write_videos(tmp_path / "videos")


def _run(run_config, **kwargs) -> runner.RunReport:
    return runner.run_config(run_config, progress=False, plots=False, report=False, log=lambda m: None, publish=publish, **kwargs)


def test_overwriting_a_methods_frames_recomputes_that_method_only(videos, tmp_path):
    run = config(videos, tmp_path / "run")
    before = _run(run).per_frame
    darker = (videos["noisy"] // 2).astype(np.uint8)  # same names, same sizes, other pixels
    write_frames(videos["root"] / "noisy" / "seq", darker)
    after = _run(run)
    assert set(after.computed_parts) == {p for p in PARTS if "/noisy/" in p}
    forced = _run(run, force=True).per_frame
    np.testing.assert_array_equal(after.per_frame["psnr"], forced["psnr"])
    noisy = after.per_frame["method"] == "noisy"
    assert not np.allclose(after.per_frame.loc[noisy, "psnr"], before.loc[noisy, "psnr"])
    expected = 10 * np.log10(1 / ((darker / 255.0 - videos["gt"] / 255.0) ** 2).mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(after.per_frame.loc[noisy, "psnr"], expected, rtol=1e-5)


def test_a_file_copied_over_with_its_old_mtime_is_still_seen(videos, tmp_path):
    run = config(videos, tmp_path / "run")
    _run(run)
    frame = videos["root"] / "noisy" / "seq" / "00003.png"
    stat = frame.stat()
    shutil.copyfile(videos["root"] / "blurred" / "seq" / "00003.png", frame)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p or rsync -t would keep it
    assert set(_run(run).computed_parts) == {p for p in PARTS if "/noisy/" in p}


def test_changing_the_ground_truth_recomputes_every_method(videos, tmp_path):
    run = config(videos, tmp_path / "run")
    _run(run)
    write_frames(videos["root"] / "gt" / "seq", videos["gt"][:, ::-1].copy())
    assert set(_run(run).computed_parts) == PARTS


def test_a_new_cabench_version_recomputes_everything(videos, tmp_path, monkeypatch):
    run = config(videos, tmp_path / "run")
    _run(run)
    assert _run(run).computed_parts == []
    monkeypatch.setattr("benchmark.results.fingerprint.cabench_version", lambda: "99.0.0")
    assert set(_run(run).computed_parts) == PARTS


def _code_changed(monkeypatch) -> None:
    """A version bumped in memory stands for one bumped in a file, which changes the code's stamp and so
    makes the published outputs out of date (benchmark.engine.published): the run plans its parts again."""
    monkeypatch.setattr(runner, "published", lambda *args: None)


def test_a_metrics_new_implementation_version_recomputes_that_metric_only(videos, tmp_path, monkeypatch):
    from metrics import registry

    _code_changed(monkeypatch)
    run = config(videos, tmp_path / "run")
    _run(run)
    spec = registry.get("psnr")
    monkeypatch.setitem(registry._REGISTRY, "psnr", dataclasses.replace(spec, version=spec.version + 1))
    assert set(_run(run).computed_parts) == {p for p in PARTS if p.endswith("/psnr")}


def test_a_protocols_new_version_recomputes_its_parts_only(videos, tmp_path, monkeypatch):
    from metrics import protocols

    _code_changed(monkeypatch)
    run = config(videos, tmp_path / "run", protocol=("canonical", "insta"))
    _run(run)
    insta = protocols.PROTOCOLS["insta"]
    monkeypatch.setitem(protocols.PROTOCOLS._objects, "insta", dataclasses.replace(insta, version=insta.version + 1))
    computed = _run(run).computed_parts
    assert computed and all("/insta/" in part for part in computed)


def test_the_saved_config_runs_as_saved_from_any_folder_and_reuses_everything(videos, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(videos["root"])
    relative = tmp_path / "relative.toml"
    relative.write_text("""
[run]
out = "run"
metrics = ["l2", "psnr", "ssim"]
split = "all"
batch_size = 4
[[datasets]]
name = "synthetic"
kind = "frames"
path = "videos/gt/seq"
[[methods]]
name = "noisy"
frames = "videos/noisy/{sequence}"
[[methods]]
name = "blurred"
adapter = "folder"
settings = { path = "videos/blurred/{sequence}" }
""")
    assert main(["run", str(relative), "--quiet", "--no-plots"]) == 0
    saved = tmp_path / "run" / "config.toml"
    assert 'path = "videos' not in saved.read_text()  # every path absolute
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["run", str(saved), "--no-plots"]) == 0
    assert "computed 0 (100% reused)" in capsys.readouterr().out
    assert main(["run", "../run/config.toml", "--no-plots"]) == 0  # a relative path to it, too
    assert "computed 0 (100% reused)" in capsys.readouterr().out


def test_a_degradations_fingerprint_follows_its_ground_truth(tmp_path):
    from benchmark.datasets.synthetic import write_sequence

    data = tmp_path / "data"
    write_sequence(data, frames=6, size=64, seed=0, name="s0", progress=False)
    run = RunConfig(datasets=(DatasetConfig(name="synthetic", path=str(data), kind="synthetic"),),
                    methods=(MethodConfig(name="flicker", adapter="degraded", settings={"degradation": "flicker"}),),
                    metrics=("psnr",), out=str(tmp_path / "run"), split="all", batch_size=3)
    first = _run(run)
    assert first.computed_parts == ["synthetic/s0/flicker/canonical/psnr"]
    assert _run(run).computed_parts == []
    image = data / "s0" / "images" / "00002.png"
    image.write_bytes(image.read_bytes())  # rewritten in place with the same bytes: a new mtime, same content
    assert _run(run).computed_parts == []
    from PIL import Image

    pixels = np.array(Image.open(image))
    pixels[10, 10, :3] = 255 - pixels[10, 10, :3]
    Image.fromarray(pixels).save(image)  # the ground truth changed: the degradation of it too
    assert _run(run).computed_parts == ["synthetic/s0/flicker/canonical/psnr"]
