"""The engine: results against closed forms, resume after an interruption, reuse, --force, shards,
missing metrics, samples, temporal metrics restarted, several protocols in one run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmark import runner
from benchmark.engine import samples
from benchmark.results.names import safe_name
from benchmark.results.store import Part
from metrics.errors import CabenchError
from reports.publish import publish
from tests.run_helpers import FRAMES, config, write_videos


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    return write_videos(tmp_path_factory.mktemp("videos"))


def _run(run_config, **kwargs) -> runner.RunReport:
    return runner.run_config(run_config, progress=False, plots=False, report=False, log=lambda m: None, publish=publish, **kwargs)


def _interrupted_after(appends: int, run_config, monkeypatch) -> None:
    """Run and interrupt it (as Ctrl-C would) after ``appends`` batch writes to the store."""
    calls = {"n": 0}
    original = Part.append

    def dying_append(self, rows):
        calls["n"] += 1
        if calls["n"] > appends:
            raise KeyboardInterrupt
        original(self, rows)

    monkeypatch.setattr(Part, "append", dying_append)
    with pytest.raises(KeyboardInterrupt, match="run the same command again to resume"):
        _run(run_config)
    monkeypatch.setattr(Part, "append", original)


def test_result_table_layout_and_values(videos, tmp_path):
    table = _run(config(videos, tmp_path / "run")).per_frame
    assert list(table.columns) == ["dataset", "sequence", "method", "frame", "protocol", "l2", "psnr", "ssim"]
    assert len(table) == 2 * FRAMES and set(table["protocol"]) == {"canonical"} and set(table["sequence"]) == {"seq"}
    noisy = table[table["method"] == "noisy"].sort_values("frame")
    mse = ((videos["noisy"] / 255.0 - videos["gt"] / 255.0) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(noisy["l2"].to_numpy(), mse, rtol=1e-5)
    np.testing.assert_allclose(noisy["psnr"].to_numpy(), 10 * np.log10(1 / mse), rtol=1e-5)
    assert (tmp_path / "run" / "per_frame.csv").read_text() == table.to_csv(index=False)


def test_interrupted_run_resumes_to_the_same_numbers_and_reuses_what_was_stored(videos, tmp_path, monkeypatch):
    expected = (_run(config(videos, tmp_path / "uninterrupted")).out / "per_frame.csv").read_bytes()
    run = config(videos, tmp_path / "killed")
    _interrupted_after(4, run, monkeypatch)  # l2, psnr, ssim of the first batch of the first method, then l2's second
    folder = Path(run.out) / "parts" / "synthetic" / "seq" / "noisy" / "canonical"
    assert list(Part(folder, "psnr", "").rows().get("frame", [])) == []  # another fingerprint reads as nothing
    logs = {p.stem: p for p in folder.glob("*.log")}
    assert set(logs) == {"l2", "psnr", "ssim"} and not list(folder.glob("*.csv"))

    resumed = _run(run)
    assert resumed.reused_frames == 8 + 4 + 4  # l2 of 8 frames, psnr and ssim of 4: nothing stored is recomputed
    assert resumed.computed_frames == 3 * 2 * FRAMES - resumed.reused_frames
    assert (Path(run.out) / "per_frame.csv").read_bytes() == expected

    again = _run(run)
    assert again.computed_frames == 0 and again.reused_frames == 3 * 2 * FRAMES and again.computed_parts == []
    forced = _run(run, force=True)
    assert forced.computed_frames == 3 * 2 * FRAMES and forced.reused_frames == 0
    assert (Path(run.out) / "per_frame.csv").read_bytes() == expected


def test_a_changed_setting_is_recomputed_not_reused(videos, tmp_path):
    run = config(videos, tmp_path / "run")
    _run(run)
    swapped = run.replace(methods=(run.methods[0].replace(frames=run.methods[1].frames),
                                                run.methods[1]))
    work = _run(swapped)
    assert sorted(work.computed_parts) == [f"synthetic/seq/noisy/canonical/{m}" for m in ("l2", "psnr", "ssim")]
    table = work.per_frame
    np.testing.assert_allclose(table[table["method"] == "noisy"]["l2"].to_numpy(),
                               table[table["method"] == "blurred"]["l2"].to_numpy())
    more = swapped.replace(metrics=("l2", "psnr", "ssim", "l1"))
    assert sorted(_run(more).computed_parts) == ["synthetic/seq/blurred/canonical/l1", "synthetic/seq/noisy/canonical/l1"]


def test_shards_merge_into_the_single_run(videos, tmp_path):
    single = _run(config(videos, tmp_path / "single")).per_frame
    sharded = config(videos, tmp_path / "sharded")
    for index in range(2):
        assert _run(sharded, shard=(index, 2)) is None  # a shard does not merge
    merged = runner.merge_run(sharded, plots=False, report=False, publish=publish)
    pd.testing.assert_frame_equal(merged.per_frame, single)


def test_merge_refuses_an_unfinished_run(videos, tmp_path):
    run = config(videos, tmp_path / "run")
    _run(run, shard=(0, 2))
    with pytest.raises(CabenchError, match="blurred l2 .canonical. is not stored"):
        runner.merge_run(run, plots=False, report=False, publish=publish)


def test_missing_metric_is_recorded_with_its_reason_and_outputs_are_written(videos, tmp_path, torch_home):
    run = config(videos, tmp_path / "run", metrics=("l2", "psnr", "ssim", "lpips"))
    report = _run(run)
    assert "lpips" not in report.per_frame.columns
    assert list(report.missing["metric"]) == ["lpips", "lpips"]
    assert set(report.missing["protocol"]) == {"canonical"}
    assert report.missing["reason"].str.contains("alexnet-owt-7be5be79.pth").all()
    state = json.loads((Path(run.out) / "parts" / "synthetic" / "seq" / "noisy" / "canonical" / "lpips.json").read_text())
    assert not state["complete"] and "alexnet" in state["missing"]
    names = {f.name for f in report.files}
    assert {"per_frame.csv", "summary.csv", "missing.csv", "config.toml", "table1.md", "table1.tex", "table1.csv"} <= names
    table1 = (Path(run.out) / "table1.md").read_text()
    assert "| missing |" in table1 and "LPIPS: missing (" in table1
    summary = pd.read_csv(Path(run.out) / "summary.csv")
    assert set(summary["metric"]) == {"l2", "psnr", "ssim"} and (summary["count"] == FRAMES).all()
    assert (summary["coverage"] == 1.0).all()


def test_samples_and_safe_names(videos, tmp_path):
    _run(config(videos, tmp_path / "run"))
    folder = tmp_path / "run" / "parts" / "synthetic" / "seq"
    strip = cv2.imread(str(folder / "noisy" / "samples.png"))
    assert strip.shape == (samples.LABEL_HEIGHT + samples.SAMPLE_HEIGHT, 4 * samples.SAMPLE_HEIGHT + 3 * 2, 3)
    assert cv2.imread(str(folder / "gt_samples.png")).shape == strip.shape  # the strips line up column by column
    assert json.loads((folder / "noisy" / "method.json").read_text())["method"] == "noisy"
    assert samples.sample_ids(list(range(10))) == [0, 3, 6, 9]
    assert safe_name("INSTA") == "INSTA"
    assert safe_name("w/o LCM") != safe_name("w_o_LCM") and "/" not in safe_name("w/o LCM")


def test_a_temporal_metric_interrupted_midway_is_recomputed_from_the_start(videos, tmp_path, monkeypatch):
    from metrics import registry

    if "flow_gap" not in registry.list_metrics():
        pytest.skip("the temporal metrics are not installed")
    expected = _run(config(videos, tmp_path / "uninterrupted", metrics=("psnr", "flow_gap"))).per_frame
    assert expected["flow_mag_gt"].notna().sum() == 2 * (FRAMES - 1)  # every frame but the first of each method

    run = config(videos, tmp_path / "killed", metrics=("psnr", "flow_gap"))
    _interrupted_after(2, run, monkeypatch)  # psnr and flow_gap of the first batch
    resumed = _run(run)
    assert resumed.reused_frames == 4  # psnr of the first batch; flow_gap starts again from frame 0
    pd.testing.assert_frame_equal(resumed.per_frame, expected)


def test_a_run_whose_every_metric_is_missing_still_reports(videos, tmp_path, torch_home):
    run = config(videos, tmp_path / "run", metrics=("lpips",))
    report = runner.run_config(run, progress=False, log=lambda m: None, publish=publish)
    assert report.per_frame.empty and len(report.missing) == 2
    table1 = (Path(run.out) / "table1.md").read_text()
    # said plainly, once: no grid of "missing" cells, one note for both methods
    assert "Not measured in this run" in table1 and "| missing |" not in table1
    assert table1.count("LPIPS: missing (") == 1 and "for all methods" in table1
    assert "alexnet" in (Path(run.out) / "report.html").read_text()


def test_several_protocols_in_one_run_equal_their_single_protocol_runs(videos, tmp_path):
    both = _run(config(videos, tmp_path / "both", protocol=("canonical", "insta"))).per_frame
    assert list(dict.fromkeys(both["protocol"])) == ["canonical", "insta"]
    assert len(both) == 2 * 2 * FRAMES
    for protocol in ("canonical", "insta"):
        alone = _run(config(videos, tmp_path / protocol, protocol=protocol))
        rows = both[both["protocol"] == protocol].dropna(axis=1, how="all").reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, alone.per_frame.reset_index(drop=True))
    report = _run(config(videos, tmp_path / "both", protocol=("canonical", "insta")))
    assert report.computed_parts == []  # parts are per protocol: everything reused
    assert set(report.missing["protocol"]) == {"insta"} and set(report.missing["metric"]) == {"ssim"}  # INSTA has no SSIM
    summary = report.summary
    assert set(zip(summary["protocol"], summary["metric"])) >= {("canonical", "ssim"), ("insta", "psnr")}
    table1 = (tmp_path / "both" / "table1.md").read_text()
    assert "| synthetic | noisy |" in table1 and table1.count("| insta |") == 2 and table1.count("| canonical |") == 2


def test_protocol_all_expands_to_every_protocol(videos, tmp_path):
    from benchmark.engine.plan import protocols_of
    from metrics.protocols import PROTOCOLS

    assert protocols_of(config(videos, tmp_path, protocol="all")) == list(PROTOCOLS)
    assert protocols_of(config(videos, tmp_path, protocol="insta,canonical")) == ["insta", "canonical"]
    with pytest.raises(CabenchError, match="unknown protocol 'mine'"):
        protocols_of(config(videos, tmp_path, protocol=("canonical", "mine")))


def test_a_size_mismatch_in_a_run_names_the_config_key_that_fixes_it(videos, tmp_path):
    from benchmark.config import MethodConfig
    from benchmark.io import write_frames

    small = videos["root"] / "small" / "seq"
    write_frames(small, videos["gt"][:, :32, :32].copy())
    run = config(videos, tmp_path / "run").replace(methods=(MethodConfig(name="small", frames=str(small)),))
    with pytest.raises(CabenchError, match=r'frame size 32x32 differs .*align = \["resize"\] in \[run\]'):
        _run(run)


def test_time_s_is_the_adapters_time_after_load(videos, tmp_path, monkeypatch):
    """The engine loads an adapter (load()) before it asks for frames, so time_s is rendering alone:
    an adapter that reports 0.125 s per frame once loaded (and 99 s if asked before) gives 0.125 s."""
    from baselines import base
    from baselines.catalogue import ADAPTERS
    from benchmark.config import MethodConfig
    from benchmark.io import ArrayFrames

    calls = []

    class Loaded(base.Adapter):
        key, row = "test_loaded", "Loaded"

        def load(self):
            calls.append("load")

        def outputs(self, sequence):
            calls.append("outputs")
            ids = self.frame_ids(sequence)
            seconds = 0.125 if calls[:1] == ["load"] else 99.0
            return base.MethodOutput(ArrayFrames(videos["noisy"], frame_ids=ids), {}, seconds_per_frame=seconds)

        def fingerprint(self, sequence):
            return "loaded-v1"

    monkeypatch.setitem(ADAPTERS._targets, Loaded.key, None)  # registered for this test only
    monkeypatch.setitem(ADAPTERS._objects, Loaded.key, Loaded)
    run = config(videos, tmp_path / "run").replace(methods=(MethodConfig(name="Loaded", adapter="test_loaded"),))
    table = _run(run).per_frame
    assert calls == ["load", "outputs"] and (table["time_s"] == 0.125).all()
    metadata = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert metadata["host"]["torch_threads"] >= 1 and metadata["host"]["device"] == "cpu"  # what the time was made on


def test_each_adapter_is_built_once_and_serves_every_sequence(videos, tmp_path, monkeypatch):
    """The engine checks and builds a method's adapter once, before any work, and every sequence of the
    run renders through that one object (it was built per (sequence, method), and again to check it)."""
    from baselines import base
    from baselines.catalogue import ADAPTERS
    from benchmark.config import MethodConfig
    from benchmark.io import ArrayFrames

    built, rendered = [], []

    class Counted(base.Adapter):
        key, row = "test_counted", "Counted"

        def __init__(self, name: str | None = None, split: str = "test"):
            super().__init__(name=name, split=split)
            built.append(self)

        def outputs(self, sequence):
            rendered.append(self)
            return base.MethodOutput(ArrayFrames(videos["noisy"], frame_ids=self.frame_ids(sequence)), {})

        def fingerprint(self, sequence):
            return "counted-v1"

    monkeypatch.setitem(ADAPTERS._targets, Counted.key, None)  # registered for this test only
    monkeypatch.setitem(ADAPTERS._objects, Counted.key, Counted)
    run = config(videos, tmp_path / "run")
    truth = run.datasets[0]
    run = run.replace(datasets=tuple(truth.replace(name=name) for name in ("one", "two")),
                                     methods=(MethodConfig(name="Counted", adapter="test_counted"),))
    table = _run(run).per_frame
    assert set(table["dataset"]) == {"one", "two"}
    assert len(built) == 1 and rendered == [built[0], built[0]]
