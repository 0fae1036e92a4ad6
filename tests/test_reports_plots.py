"""Plots (timing against steps, temporal curves, bars, traces) and the self-contained HTML report."""

from __future__ import annotations

import base64
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from reports import plots


def _timing_csv(path, refiner=0.0):
    """A CSV as `cabench time` writes it: milliseconds per frame in *_ms columns."""
    rows = []
    for scheduler, per_step in (("lcm", 20.0), ("ddim", 30.0)):
        for steps in (1, 2, 4, 8):
            for repeat, noise in enumerate((0.0, 4.0, -2.0)):
                fcsd = steps * per_step + noise
                rows.append({"scheduler": scheduler, "steps": steps, "repeat": repeat, "threads": 1, "batch": 8,
                             "tsd_ms": 1.0, "tsdm_ms": 10.0, "fcsd_ms": fcsd, "fcsd_step_ms": fcsd / steps,
                             "vae_decode_ms": 5.0, "refiner_ms": refiner, "total_ms": 16.0 + fcsd + refiner})
    pd.DataFrame(rows).to_csv(path, index=False)
    return pd.DataFrame(rows)


def test_timing_curves_are_medians_over_repeats_and_the_cli_draws_them(tmp_path, capsys):
    frame = _timing_csv(tmp_path / "times.csv")
    curves = plots.timing_curves(plots.read_timing(tmp_path))
    # the refiner did not run (all zero): no flat line for it; per-step and metadata columns are not stages
    assert set(curves) == {(s, stage) for s in ("lcm", "ddim") for stage in ("tsd_ms", "tsdm_ms", "fcsd_ms",
                                                                              "vae_decode_ms", "total_ms")}
    fcsd = curves[("lcm", "fcsd_ms")]
    np.testing.assert_allclose(fcsd["median"], [20, 40, 80, 160])
    np.testing.assert_allclose(fcsd["high"] - fcsd["low"], 6)
    expected = frame[frame["scheduler"] == "ddim"].groupby("steps")["total_ms"].median().to_numpy()
    np.testing.assert_allclose(curves[("ddim", "total_ms")]["median"], expected)
    assert main(["plots", "--timing", str(tmp_path)]) == 0
    image = cv2.imread(str(tmp_path / "timing_steps.png"))
    assert image is not None and image.shape[1] > image.shape[0] > 200
    assert "timing_steps.png" in capsys.readouterr().out
    _timing_csv(tmp_path / "refined.csv", refiner=3.0)
    assert ("lcm", "refiner_ms") in plots.timing_curves(plots.read_timing(tmp_path / "refined.csv"))


def test_timing_plot_labels_milliseconds_integer_steps_and_one_uncut_legend(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    plots.timing_plot(_timing_csv(tmp_path / "times.csv"), tmp_path)
    fig = figures[0]
    axes = fig.axes
    assert len(axes) == 2 and all(ax.get_ylabel().startswith("milliseconds per frame") for ax in axes)
    for ax in axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8"]
        assert ax.get_legend() is None  # one legend for the figure, not one per panel over its neighbour
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["TSD", "TSDM (stage 2)", "FCSD steps", "VAE decode", "total"]
    fig.savefig(tmp_path / "check.png", bbox_inches="tight")  # as _save does: the legend lies inside the image
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)
    assert legend.get_window_extent(renderer).x1 <= box.x1 * fig.dpi + 1
    plt.close(fig)


def test_older_unsuffixed_timing_csv_reads_as_milliseconds(tmp_path):
    pd.DataFrame({"scheduler": ["lcm"] * 2, "steps": [1, 2], "repeat": [0, 0], "tsd": [0.5, 0.5],
                  "unet_controlnet_step": [18.0, 18.5], "total": [50.0, 70.0]}).to_csv(tmp_path / "times.csv", index=False)
    frame = plots.read_timing(tmp_path)
    assert list(frame["total_ms"]) == [50.0, 70.0] and "fcsd_step_ms" in frame


def test_timing_csv_without_the_columns_is_an_error(tmp_path):
    (tmp_path / "timing.csv").write_text("a,b\n1,2\n")
    assert main(["plots", "--timing", str(tmp_path / "timing.csv")]) == 2


def _per_frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for sequence in ("s0", "s1"):
        gt_motion = 1 + np.sin(np.arange(10) / 2)
        for method, shake in (("stage-1 proxy", 0.5), ("w/o LCM", 0.1)):
            for frame in range(10):
                rows.append({"dataset": "synthetic", "sequence": sequence, "method": method, "frame": frame,
                             "protocol": "canonical", "l2": rng.uniform(0.001, 0.01), "psnr": rng.uniform(20, 30),
                             "flow_gap": np.nan if frame == 0 else shake,
                             "flow_mag_pred": np.nan if frame == 0 else gt_motion[frame] + shake,
                             "flow_mag_gt": np.nan if frame == 0 else gt_motion[frame]})
    return pd.DataFrame(rows)


def test_run_plots_draw_temporal_curves_bars_and_traces(tmp_path):
    from benchmark.results.summary import summarize

    per_frame = _per_frame()
    summary = summarize(per_frame)
    files = {p.name for p in plots.run_plots(per_frame, summary, tmp_path)}
    assert {"temporal_synthetic_s0.png", "temporal_synthetic_s1.png", "bars_l2.png", "bars_psnr.png",
            "trace_psnr_synthetic_s0.png"} <= files
    if "flow_gap" in {c for c in plots.headline_columns(["flow_gap"])}:  # with the temporal metrics registered
        assert "bars_flow_gap.png" in files
    assert "bars_flow_mag_pred.png" not in files and not any(name.startswith("trace_l2") for name in files)
    assert plots._label("psnr") == "psnr (dB) ↑" and plots._label("l2") == "l2 ↓"


def test_html_report_is_self_contained_with_tables_plots_samples_protocol_and_versions(tmp_path, photos):
    from benchmark.config import DatasetConfig, MethodConfig, RunConfig
    from benchmark.engine.outputs import write_outputs
    from benchmark.engine.samples import write_samples
    from benchmark.io import ArrayFrames
    from benchmark.results.folder import RunFolder
    from reports.publish import publish

    per_frame = _per_frame()
    missing = pd.DataFrame({"dataset": ["synthetic"], "sequence": ["s0"], "method": ["w/o LCM"], "protocol": ["canonical"],
                            "metric": ["lpips"], "reason": ["alexnet-owt-7be5be79.pth not found"]})
    config = RunConfig(datasets=(DatasetConfig(name="synthetic", path="d"),), methods=(MethodConfig(name="w/o LCM", frames="f"),),
                       out=str(tmp_path))
    folder = RunFolder(tmp_path)
    frames = ArrayFrames(np.stack([cv2.resize(photos["astronaut"], (64, 64))] * 6))
    method = folder.pair_folder("synthetic", "s0", "w/o LCM")
    write_samples(frames, frames, list(range(6)), method / "samples.png", method.parent / "gt_samples.png")
    write_outputs(folder, config, per_frame, missing, ["canonical"], publish=publish)
    html = (tmp_path / "report.html").read_text()
    assert "<table class='results' id='table1'>" in html and "id='metrics'" in html and "id='summary'" in html
    assert "id='table2'" not in html  # no DECA metric in the run: no empty Table 2
    assert "LPIPS: missing (alexnet-owt-7be5be79.pth not found)" in html
    assert "canonical" in html and "Versions" in html and "torch" in html and "[[methods]]" in html
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) >= 6  # plots + the ground-truth and method sample strips
    for data in images:
        assert cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR) is not None
    assert not re.search(r"(src|href)=['\"](http|file|/)", html)  # nothing outside the file


@pytest.mark.parametrize("paper", [False, True])
def test_cabench_tables_writes_the_three_formats(tmp_path, capsys, paper):
    per_frame = _per_frame()
    per_frame.to_csv(tmp_path / "per_frame.csv", index=False)
    assert main(["tables", "--run", str(tmp_path), *(["--paper"] if paper else [])]) == 0
    suffix = "_paper" if paper else ""
    for name in ("table1", "table2"):  # no DECA metric was run: Table 2 only beside the paper's numbers
        for ext in ("md", "tex", "csv"):
            assert (tmp_path / f"{name}{suffix}.{ext}").exists() == (paper or name == "table1")
    table = pd.read_csv(tmp_path / f"table1{suffix}.csv")
    l2 = table[(table["column"] == "l2") & (table["method"] == "stage-1 proxy")]["measured"].iloc[0]
    assert l2 == pytest.approx(per_frame[per_frame["method"] == "stage-1 proxy"]["l2"].mean())
    assert ("L2 reported" in capsys.readouterr().out) == paper


def test_time_and_quality_against_steps(tmp_path):
    _timing_csv(tmp_path / "times.csv")
    quality = pd.DataFrame({"scheduler": ["lcm"] * 4 + ["ddim"] * 4, "steps": [1, 2, 4, 8] * 2,
                            "psnr": [24.0, 26.0, 27.0, 27.5, 20.0, 23.0, 25.0, 26.0]})
    quality.to_csv(tmp_path / "quality.csv", index=False)
    assert main(["plots", "--timing", str(tmp_path), "--quality", str(tmp_path / "quality.csv")]) == 0
    assert cv2.imread(str(tmp_path / "steps_psnr.png")) is not None
    assert main(["plots", "--timing", str(tmp_path), "--quality", str(tmp_path / "quality.csv"), "--metric", "ssim"]) == 2
