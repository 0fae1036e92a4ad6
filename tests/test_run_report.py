"""What a reader of a run gets: methods' roles, run metadata, per-sequence views, sanity rows apart,
one look across the plots, and a report that says all of it.

One small run (two synthetic sequences of 16 frames, test split of 4; the stage-1 proxy as the one
method, two synthetic degradations as sanity checks; l2, psnr, flow_gap, warp_error, lmd) is made once and
read by every test of this module.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config import DatasetConfig, MethodConfig, RunConfig
from reports.publish import publish

METHODS = ("INSTA (stage-1 proxy)", "Synthetic: flicker", "Synthetic: over-smoothing")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from benchmark.datasets.synthetic import write_sequence
    from benchmark.runner import run_config

    root = tmp_path_factory.mktemp("report_run")
    for index in range(2):
        write_sequence(root / "data", frames=16, size=96, seed=index, name=f"talk{index}", progress=False)
    config = RunConfig(
        datasets=(DatasetConfig(name="synthetic", path=str(root / "data"), kind="synthetic"),),
        methods=(MethodConfig(name=METHODS[0], adapter="insta", settings={"experiment": "stage1_proxy"}),
                 MethodConfig(name=METHODS[1], adapter="degraded", settings={"degradation": "flicker", "strength": 0.02}),
                 MethodConfig(name=METHODS[2], adapter="degraded", settings={"degradation": "oversmooth"})),
        metrics=("l2", "psnr", "flow_gap", "warp_error", "lmd"), out=str(root / "out"), batch_size=4, split="test",
        options={"face_region": "detect"})  # detection on the method's frames: some frames have no face
    report = run_config(config, progress=False, log=lambda m: None, publish=publish)
    return {"out": root / "out", "report": report, "per_frame": report.per_frame}


# ---------------------------------------------------------------------------- roles


def test_methods_csv_records_each_methods_role(run):
    from benchmark.results.schema import is_sanity, read_methods

    methods = pd.read_csv(run["out"] / "methods.csv")
    assert list(methods.columns) == ["method", "role", "adapter"]
    assert list(methods["method"]) == list(METHODS)
    assert read_methods(run["out"]) == {METHODS[0]: "method", METHODS[1]: "sanity", METHODS[2]: "sanity"}
    assert list(methods["adapter"]) == ["insta", "degraded", "degraded"]
    assert not is_sanity(METHODS[0], read_methods(run["out"])) and is_sanity(METHODS[1], read_methods(run["out"]))
    assert read_methods(run["out"] / "absent") == {}  # a run without the file: every row a method


def test_a_sanity_check_is_never_bold_even_where_it_scores_best(run):
    per_frame = run["per_frame"]
    psnr = per_frame.groupby("method")["psnr"].mean()
    assert psnr[METHODS[1]] > psnr[METHODS[0]]  # the mild flicker beats the proxy: it would have been bold
    table = (run["out"] / "table1.md").read_text()
    main, sanity = table.split("*Sanity checks")
    assert "**" + format(psnr[METHODS[0]], ".2f") + "**" in main  # the one method is its group's best
    assert METHODS[1] not in main and METHODS[1] in sanity
    assert not re.search(r"\*\*[0-9]", sanity)  # nothing bold among the sanity checks
    tex = (run["out"] / "table1.tex").read_text()
    section = tex[tex.index("Sanity checks (not methods)"):]
    assert METHODS[1] in section and r"\textbf" not in section
    html = (run["out"] / "report.html").read_text()
    checks = re.search(r"<table class='results sanity' id='table1-sanity'>.*?</table>", html).group(0)
    assert METHODS[1] in checks and "<b>" not in checks


# ---------------------------------------------------------------------------- per sequence


def test_per_sequence_summary_and_tables(run):
    per_frame = run["per_frame"]
    summary = pd.read_csv(run["out"] / "summary_per_sequence.csv")
    expected = per_frame.groupby(["sequence", "method"])["psnr"].mean()
    got = summary[summary["metric"] == "psnr"].set_index(["sequence", "method"])["mean"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    table = (run["out"] / "table1_per_sequence.md").read_text()
    rows = [line.split("|")[1:-1] for line in table.split("*Sanity")[0].splitlines() if line.startswith("| synthetic")
            or line.startswith("|  |")]
    assert [r[1].strip() for r in rows] == ["talk0", "talk1"]  # one method, one row per sequence, each its best
    for row, sequence in zip(rows, ("talk0", "talk1")):
        assert row[4].strip() == "**" + format(expected[(sequence, METHODS[0])], ".2f") + "**"
    assert "Best measured value per dataset, sequence and protocol in bold" in table


def test_cabench_tables_per_sequence(run, tmp_path, capsys):
    from benchmark.cli import main

    assert main(["tables", "--run", str(run["out"]), "--per-sequence", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "table1_per_sequence.md").read_text() == (run["out"] / "table1_per_sequence.md").read_text()
    assert "talk1" in capsys.readouterr().out


# ---------------------------------------------------------------------------- metadata


def test_run_metadata_records_when_what_where_and_how(run):
    import torch

    from benchmark.results.schema import read_metadata

    metadata = read_metadata(run["out"])
    assert metadata == run["report"].metadata
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", metadata["created"])
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert metadata["cabench"]["commit"] == head.stdout.strip() and metadata["cabench"]["dirty"] in (True, False)
    assert metadata["host"]["torch_threads"] == torch.get_num_threads() and metadata["host"]["device"] == "cpu"
    assert metadata["host"]["cpu_count"] >= 1 and metadata["host"]["cpu"]
    for library in ("torch", "numpy", "diffusers", "transformers", "accelerate", "opencv-python-headless",
                    "dlib-bin", "scikit-image", "lpips"):
        assert metadata["libraries"][library] not in ("", None), library
    assert metadata["libraries"]["torch"] == torch.__version__
    (dataset,) = metadata["datasets"]
    assert dataset["name"] == "synthetic" and dataset["split"] == "test"
    assert [(s["name"], s["frames"], s["split_frames"], s["resolution"]) for s in dataset["sequences"]] == [
        ("talk0", 16, 4, "96x96"), ("talk1", 16, 4, "96x96")]
    (protocol,) = metadata["protocols"]
    assert protocol["id"] == "canonical" and "structural_similarity(gaussian_weights=True" in protocol["definition"]
    assert metadata["policies"] == {"mask": False, "align": [], "split": "test"}
    assert {(r["sequence"], r["method"], r["frames_evaluated"], r["frames_in_split"]) for r in metadata["evaluated"]} == {
        (s, m, 4, 4) for s in ("talk0", "talk1") for m in METHODS}


def test_a_masked_evaluation_on_a_few_frames_says_so(tmp_path, capsys):
    """A masked cabench eval says it is masked, and --align intersect on 3 of 8 frames says so, in the
    tables, the metadata and the report."""
    from benchmark.cli import main
    from benchmark.io import write_frames
    from tests.run_helpers import write_videos

    videos = write_videos(tmp_path / "v")
    for frame in sorted((tmp_path / "v" / "noisy" / "seq").iterdir())[3:]:
        frame.unlink()  # the method rendered 3 of the 8 frames
    masks = np.zeros((8, 64, 64), np.uint8)
    masks[:, 16:48, 16:48] = 255
    write_frames(tmp_path / "masks", np.repeat(masks[..., None], 3, axis=-1))
    status = main(["eval", "--gt", str(tmp_path / "v" / "gt" / "seq"), "--pred", f"noisy={tmp_path / 'v' / 'noisy' / 'seq'}",
                   "--mask", str(tmp_path / "masks"), "--align", "intersect", "--metrics", "l2", "--out",
                   str(tmp_path / "out"), "--quiet"])
    assert status == 0 and videos
    printed = capsys.readouterr().out
    table = (tmp_path / "out" / "table1.md").read_text()
    for text in (printed, table, (tmp_path / "out" / "report.html").read_text()):
        assert "Masked: every metric is computed over the ground truth" in text
        assert "noisy on seq/seq: 3 of 8 frames" in text
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["policies"]["mask"] and metadata["policies"]["align"] == ["intersect"]
    assert [(r["frames_evaluated"], r["frames_in_split"]) for r in metadata["evaluated"]] == [(3, 8)]


# ---------------------------------------------------------------------------- plots


def _figures(run, monkeypatch) -> dict[str, object]:
    """The run's plots drawn again through the run's own colours, kept as matplotlib figures."""
    from benchmark.results.schema import read_methods
    from benchmark.results.summary import summarize
    from reports import plots

    roles = read_methods(run["out"])
    drawn = {}

    def keep(fig, path, caption=""):
        drawn[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(plots, "_save", keep)
    per_frame = run["per_frame"]
    plots.run_plots(per_frame, summarize(per_frame), run["out"] / "unused", roles=roles,
                    colors=plots.method_colors(list(roles), roles))
    return drawn


def _method_colours(fig) -> dict[str, tuple]:
    """{method: colour} as drawn: panel titles (small multiples), legend labels of lines and bars."""
    from matplotlib.colors import to_rgba

    found = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label()
            if label == "method":  # a small-multiples panel: the method is the panel's title
                label = ax.get_title().replace("\n", " ")
            found.setdefault(label.replace(" (sanity check)", ""), to_rgba(line.get_color()))
        for container in ax.containers:
            if hasattr(container, "patches") and container.get_label():
                found.setdefault(container.get_label().replace(" (sanity check)", ""),
                                 to_rgba(container.patches[0].get_facecolor()))
    return {k: v for k, v in found.items() if k in METHODS}


def test_a_method_keeps_one_colour_in_every_plot(run, monkeypatch):
    figures = _figures(run, monkeypatch)
    assert {"temporal_synthetic_talk0.png", "bars_psnr.png", "trace_warp_error_synthetic_talk1.png"} <= set(figures)
    colours = {name: _method_colours(fig) for name, fig in figures.items()}
    reference = colours["bars_psnr.png"]
    assert set(reference) == set(METHODS) and len(set(reference.values())) == 3
    for name, found in colours.items():
        assert found and all(found[m] == reference[m] for m in found), name


def test_floor_face_gaps_and_error_bars(run, monkeypatch):
    figures = _figures(run, monkeypatch)
    per_frame = run["per_frame"]
    bars = figures["bars_warp_error.png"].axes[0]
    floors = [c for c in bars.collections if c.get_label() == "ground truth (floor)"]
    assert len(floors) == 1
    assert floors[0].get_segments()[0][0][1] == pytest.approx(per_frame["warp_error_gt"].mean())
    trace = figures["trace_warp_error_synthetic_talk0.png"].axes[0]
    floor = next(line for line in trace.get_lines() if line.get_label() == "ground truth (floor)")
    talk0 = per_frame[(per_frame["sequence"] == "talk0") & (per_frame["method"] == METHODS[0])].sort_values("frame")
    np.testing.assert_allclose(np.asarray(floor.get_ydata(), float), talk0["warp_error_gt"].to_numpy(), equal_nan=True)
    # lmd: frames without a face are marked, at the frames where the value is undefined
    undefined = per_frame[per_frame["lmd"].isna()]
    assert len(undefined) and per_frame["lmd"].notna().any()  # some frames with a face, some without
    for (sequence, method), rows in undefined.groupby(["sequence", "method"]):
        name = f"trace_lmd_synthetic_{sequence}.png"
        if name not in figures:  # no face found in the whole sequence: no trace to mark
            assert per_frame[per_frame["sequence"] == sequence]["lmd"].isna().all()
            continue
        marks = [line for line in figures[name].axes[0].get_lines() if line.get_marker() == "x" and
                 line.get_linestyle() == "None" and len(line.get_xdata())]
        assert any(sorted(line.get_xdata()) == sorted(rows["frame"]) for line in marks), (sequence, method)
    from matplotlib.container import BarContainer

    assert all(c.errorbar is not None for c in bars.containers if isinstance(c, BarContainer))  # std over frames


def test_a_runtime_bar_has_no_error_bar():
    import matplotlib

    matplotlib.use("Agg", force=True)
    from reports import plots

    summary = pd.DataFrame({"dataset": "d", "method": ["a", "b"], "metric": "time_s", "protocol": "canonical",
                            "mean": [0.5, 0.7], "std": [0.1, 0.2], "count": 4, "frames": 4})
    drawn = []
    original = plots._save
    try:
        plots._save = lambda fig, path, caption="": drawn.append((fig, caption)) or Path(path)
        plots.metric_bars(summary, Path("unused"), ["time_s"])
    finally:
        plots._save = original
    (fig, caption), = drawn
    from matplotlib.container import BarContainer

    bars = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 and all(c.errorbar is None for c in bars) and "no error bar" in caption


def test_every_plot_has_a_caption_sentence(run):
    from reports.plots import caption_of

    pngs = sorted((run["out"] / "plots").glob("*.png"))
    assert len(pngs) >= 8
    for png in pngs:
        caption = caption_of(png)
        assert caption[:1].isupper() and caption.endswith(".") and len(caption.split()) >= 12, png.name
    assert "sanity" in caption_of(run["out"] / "plots" / "bars_psnr.png").lower()
    assert "floor" in caption_of(run["out"] / "plots" / "bars_warp_error.png")


# ---------------------------------------------------------------------------- report


def test_report_says_what_the_run_was_and_shows_strips_in_table_order(run):
    html = (run["out"] / "report.html").read_text()
    for fact in ("created (UTC)", "git commit", "torch threads", "resolution", "96x96", "Per sequence",
                 "structural_similarity(gaussian_weights=True"):
        assert fact in html, fact
    strips = html[html.index("<h2>Sample frames</h2>"):html.index("<h2>Tables</h2>")]
    order = [strips.index(f"<td>{m}</td>") for m in METHODS]
    assert order == sorted(order)
    assert strips.index("Sanity checks") > strips.index(f"<td>{METHODS[0]}</td>")
    # each method's frames over the ground truth's same frames, and the error map between them
    first = strips[strips.index(f"<td>{METHODS[0]}</td>"):strips.index(f"<td>{METHODS[1]}</td>")]
    assert first.count("<img") == 3 and "ground truth" in first and "error ×4" in first
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert captions and all(not re.fullmatch(r"[a-z_0-9]+", c) for c in captions)  # sentences, not file slugs


def test_strips_label_frames_and_line_up(tmp_path, photos):
    import cv2

    from benchmark.engine.samples import LABEL_HEIGHT, SAMPLE_HEIGHT, write_samples
    from benchmark.io import ArrayFrames

    gt = ArrayFrames(np.stack([cv2.resize(photos["astronaut"], (64, 48))] * 10))
    partial = ArrayFrames(gt.read(list(range(5))).rgb, frame_ids=list(range(5)))  # frames 5..9 absent
    write_samples(partial, gt, list(range(10)), tmp_path / "m.png", tmp_path / "gt.png")
    method, truth = cv2.imread(str(tmp_path / "m.png")), cv2.imread(str(tmp_path / "gt.png"))
    assert method.shape == truth.shape == (LABEL_HEIGHT + SAMPLE_HEIGHT, 4 * round(64 * SAMPLE_HEIGHT / 48) + 6, 3)
    tile = method.shape[1] // 4
    assert np.array_equal(method[:, :tile], truth[:, :tile])  # frame 0: the same frame
    last = method[LABEL_HEIGHT + 5:, -tile + 5:]
    assert np.abs(last.astype(int) - 200).max() <= 200 and np.median(last) == 200  # frame 9 absent: a grey tile
    assert (method[:LABEL_HEIGHT] < 128).any()  # the frame ids are written in the band


def test_report_opens_with_table1_and_its_plot_then_frames_then_curves_and_ends_with_the_facts(run):
    html = (run["out"] / "report.html").read_text()
    table1 = html.index("Table 1: image quality")
    headline = html.index("<figure><img alt='Mean of l2")  # Table 1's plot: its columns' means per method
    places = [table1, headline, html.index("<h2>Sample frames</h2>"),
              html.index("<h2>Temporal consistency (the paper's Fig. 7)</h2>"), html.index("Other metrics: "),
              html.index("<h2>Summary</h2>"), html.index("<h2>The run</h2>"), html.index("<h2>Versions</h2>")]
    assert places == sorted(places)
    assert html.index("<table") > table1 - 200  # nothing but the title before Table 1
    assert "white-space: nowrap" in html and html.count("<div class='scroll'>") >= 3  # "value ± ci" on one line
    assert "Table 2: DECA" not in html  # no DECA metric was asked for: no empty Table 2
