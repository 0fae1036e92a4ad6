"""`cabench demo` end to end on a small synthetic dataset: every output, missing metrics, reuse on rerun."""

from __future__ import annotations

import json
import re
from contextlib import redirect_stdout
from io import StringIO

import pandas as pd
import pytest

from benchmark.cli import main

# the smallest demo: one sequence of 8 frames (its test split: 2 frames), 64 px; the default two sequences
# cost twice the rendering and scoring and prove nothing more here (several sequences: tests/test_protocol_matrix.py)
ARGS = ["--frames", "8", "--size", "64", "--sequences", "1", "--quiet", "--no-train-frames"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo CLI run once into a fresh folder, with an empty torch hub cache (no LPIPS / DECA weights)."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        (root / "torch_home" / "hub" / "checkpoints").mkdir(parents=True)
        patch.setenv("TORCH_HOME", str(root / "torch_home"))
        patch.delenv("CABENCH_WEIGHTS", raising=False)
        stream = StringIO()
        with redirect_stdout(stream):
            status = main(["demo", "--out", str(root / "out"), *ARGS])
        yield {"out": root / "out", "status": status, "stdout": stream.getvalue()}


def test_demo_writes_every_output(demo_run):
    from benchmark.demo import demo_methods

    out = demo_run["out"]
    assert demo_run["status"] == 0
    for name in ("table1.md", "table1.tex", "table2.md", "table2.tex", "per_frame.csv", "summary.csv", "report.html",
                 "config.toml", "demo.toml"):
        assert (out / name).stat().st_size > 0, name
    per_frame = pd.read_csv(out / "per_frame.csv")
    methods = [m.name for m in demo_methods()]
    assert list(dict.fromkeys(per_frame["method"])) == methods
    assert "INSTA (stage-1 proxy)" in methods and any(m.startswith("Synthetic: ") for m in methods)
    assert "INSTA (stage-1 proxy) -> VAE" in methods  # the floor a latent model must beat
    from benchmark.demo_tables import CAPTION

    # what the tiny checkpoint is, for a reader of the report alone: in the run's metadata and the report
    assert json.loads((out / "metadata.json").read_text())["notes"] == [CAPTION]
    paired = (out / "paired.md").read_text()  # the reference rows against the full model, with intervals
    assert "tiny" in paired and "INSTA (stage-1 proxy) -> VAE" in paired and "[95% interval]" in paired
    assert "tiny* checkpoint" in (out / "report.html").read_text()  # the caption says what the rows are
    # the shipped tiny checkpoint renders its rows: the full model and its trained ablations (no
    # inference-time switches), each with its time per frame
    from baselines.consistentavatar import ABLATION_ROWS

    reference_rows = set(ABLATION_ROWS.values())
    assert {ABLATION_ROWS[None], ABLATION_ROWS["wo_lcm"]} <= set(methods)  # need no trained variant
    assert not any("zero-input" in m for m in methods)
    rendered = per_frame[per_frame["method"].isin(reference_rows)]
    assert (rendered["time_s"] > 0).all()
    assert set(per_frame["sequence"]) == {"talk0"}
    assert len(per_frame) == len(methods) * 2  # the test split is the last quarter of 8 frames
    assert (per_frame["l2"] > 0).all() and per_frame["psnr"].notna().all()
    if "flow_mag_gt" in per_frame:
        assert (out / "plots" / "temporal_synthetic_talk0.png").exists()


def test_demo_shows_every_ablation_as_a_trained_row(demo_run):
    from baselines.consistentavatar import ABLATION_ROWS
    from reference.ablations import TRAINED_ABLATIONS, trained_variants
    from reference.render import TINY_CHECKPOINT

    if set(trained_variants(TINY_CHECKPOINT)) != set(TRAINED_ABLATIONS):
        pytest.skip("shipped checkpoint has no trained variant")
    methods = set(pd.read_csv(demo_run["out"] / "per_frame.csv")["method"])
    # w/o aligned TSD is the w/o stage2 model (one trained variant): rendered once, as that row
    assert set(ABLATION_ROWS.values()) - {ABLATION_ROWS["wo_aligned_tsd"]} <= methods
    assert ABLATION_ROWS["wo_aligned_tsd"] not in methods


def test_demo_renders_each_trained_model_once():
    from benchmark.demo import demo_methods
    from reference.ablations import trained_variant

    rendered = [(m.adapter, trained_variant(m.settings.get("ablation")), m.settings.get("ablation") == "wo_lcm")
                for m in demo_methods() if m.adapter == "consistentavatar"]
    assert rendered and len(rendered) == len(set(rendered))  # (weights, sampler) pairs are distinct


def test_demo_reports_absent_weights_as_missing_never_as_numbers(demo_run):
    out = demo_run["out"]
    per_frame = pd.read_csv(out / "per_frame.csv")
    missing = pd.read_csv(out / "missing.csv")
    assert "lpips" not in per_frame.columns and "lpips" in set(missing["metric"])
    assert missing[missing["metric"] == "lpips"]["reason"].str.contains("alexnet-owt-7be5be79.pth").all()
    table1 = (out / "table1.md").read_text()
    rows = [line for line in table1.splitlines() if line.startswith("| ") and "Method" not in line]
    assert rows and all(line.split("|")[6].strip() == "missing" for line in rows)  # the LPIPS column
    assert "LPIPS: missing (alexnet-owt-7be5be79.pth" in table1
    assert "lpips: missing (" in demo_run["stdout"]


def test_demo_prints_the_summary_and_where_the_report_is(demo_run):
    stdout = demo_run["stdout"]
    assert re.search(r"report: .*report\.html", stdout)
    assert "INSTA (stage-1 proxy)" in stdout and "PSNR (dB)" in stdout and "tof (px)" in stdout


def test_demo_rerun_reuses_every_stored_number(demo_run, capsys):
    before = (demo_run["out"] / "per_frame.csv").read_text()
    assert main(["demo", "--out", str(demo_run["out"]), *ARGS[:6], "--no-train-frames"]) == 0
    assert re.search(r"reused \d+ stored \(frame, metric\) results and computed 0 \(100% reused\)", capsys.readouterr().out)
    assert (demo_run["out"] / "per_frame.csv").read_text() == before


def test_the_training_frame_run_scores_the_proxy_rows_on_the_training_split(tmp_path):
    """heldout_vs_train.md's second run: the stage-1 proxy (INSTA's adapter serves the test split only, so
    it is read as the sequence's stage-1 RGB) and its VAE round trip, on the training frames."""
    from benchmark.config import RunConfig
    from benchmark.demo import PROXY_VAE_ROW, STAGE1_ROW, demo_config, make_data, train_config
    from benchmark.demo_tables import split_table
    from benchmark.runner import claim_folder, run_config

    out = claim_folder(tmp_path / "out").path
    config = demo_config(out, make_data(out / "data", sequences=1, frames=8, size=64, progress=False))
    config = RunConfig(datasets=config.datasets, methods=tuple(m for m in config.methods if m.adapter in ("insta", "proxy_vae")),
                       metrics=("psnr",), out=str(out))
    if len(config.methods) < 2:
        pytest.skip("no shipped checkpoint")
    test = run_config(config, progress=False, log=lambda m: None)
    train = run_config(train_config(config, out / "train_frames"), progress=False, log=lambda m: None)
    assert list(dict.fromkeys(train.per_frame["method"])) == [STAGE1_ROW, PROXY_VAE_ROW]
    assert sorted(set(train.per_frame["frame"])) == list(range(6))  # the first 6 of 8 frames
    lines = split_table(test.per_frame, train.per_frame, metrics=("psnr",)).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == [f"| {STAGE1_ROW}", f"| {PROXY_VAE_ROW}"]


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--frames", "4"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_demo_restores_the_callers_torch_threads(demo_run, monkeypatch):
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["demo", "--out", str(demo_run["out"]), *ARGS]) == 0  # everything reused: quick
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
