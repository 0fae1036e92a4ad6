"""`cabench eval` and `cabench weights` end to end, and every bad input: one line, exit status 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skimage.metrics import peak_signal_noise_ratio

from benchmark.cli import main
from benchmark.io import write_frames
from tests.run_helpers import sigint_as_keyboard_interrupt

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folders(tmp_path, photos):
    gt = np.stack([photos["astronaut"][30 + 3 * i : 94 + 3 * i, 170:234] for i in range(4)])
    noisy = np.clip(gt.astype(int) + np.random.default_rng(0).integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    write_frames(tmp_path / "gt", gt)
    write_frames(tmp_path / "noisy", noisy)
    write_frames(tmp_path / "same", gt)
    return tmp_path, gt, noisy


def _run(*args):
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_eval_writes_per_frame_and_summaries(folders, torch_home):
    tmp_path, gt, noisy = folders
    out = tmp_path / "out"
    status = main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"noisy={tmp_path / 'noisy'}",
                   "--pred", f"same={tmp_path / 'same'}", "--metrics", "l2,psnr,ssim,lpips", "--out", str(out), "--quiet"])
    assert status == 0
    per_frame = pd.read_csv(out / "per_frame.csv")
    assert list(per_frame.columns) == ["dataset", "sequence", "method", "frame", "protocol", "l2", "psnr", "ssim"]
    assert set(per_frame["method"]) == {"noisy", "same"} and len(per_frame) == 8
    assert set(per_frame["dataset"]) == set(per_frame["sequence"]) == {"gt"}
    noisy_rows = per_frame[per_frame.method == "noisy"].sort_values("frame")
    for frame, row in zip(range(4), noisy_rows.itertuples()):
        assert row.psnr == pytest.approx(peak_signal_noise_ratio(gt[frame], noisy[frame]), abs=1e-4)
    summary = pd.read_csv(out / "summary.csv")
    assert {"method", "metric", "mean", "std", "count", "protocol", "coverage"} <= set(summary.columns)
    assert summary.query("method == 'noisy' and metric == 'psnr'")["count"].item() == 4
    markdown = (out / "table1.md").read_text()
    assert "LPIPS: missing" in markdown and "alexnet-owt-7be5be79.pth" in markdown
    assert "\\toprule" in (out / "table1.tex").read_text()
    assert (out / "report.html").exists() and (out / "config.toml").exists()


def test_strict_fails_when_a_metric_is_missing(folders, torch_home, capsys):
    tmp_path, _, _ = folders
    status = main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'noisy'}", "--metrics", "psnr,lpips",
                   "--out", str(tmp_path / "o"), "--strict", "--quiet"])
    assert status == 2
    assert "--strict: metrics missing: lpips" in capsys.readouterr().err
    assert (tmp_path / "o" / "per_frame.csv").exists()  # what was computed is kept


def _bad_cases(tmp_path, gt):
    empty = tmp_path / "empty"
    empty.mkdir()
    truncated = tmp_path / "truncated"
    write_frames(truncated, gt)
    data = (truncated / "00002.png").read_bytes()
    (truncated / "00002.png").write_bytes(data[: len(data) // 3])
    fewer = tmp_path / "fewer"
    write_frames(fewer, gt[:3])
    small = tmp_path / "small"
    write_frames(small, gt[:, :32, :32])
    masks = tmp_path / "masks"
    write_frames(masks, np.zeros((4, 10, 10, 3), np.uint8))
    nan_landmarks = tmp_path / "nan.npy"
    np.save(nan_landmarks, np.full((4, 68, 2), np.nan))
    return {
        "empty folder": (["--pred", f"a={empty}"], f"{empty}: no images"),
        "truncated image": (["--pred", f"a={truncated}"], "00002.png: unreadable or truncated image"),
        "frame count": (["--pred", f"a={fewer}"], "missing frames 3"),
        "frame size": (["--pred", f"a={small}"], "frame size 32x32 differs"),
        "mask shape": (["--pred", f"a={fewer}", "--align", "intersect", "--mask", str(masks)], "mask size 10x10 differs"),
        "non-finite": (["--pred", f"a={fewer}", "--align", "intersect", "--protocol", "imavatar", "--landmarks", str(nan_landmarks)],
                       "nan.npy: landmarks (--landmarks of cabench eval"),
        "unknown metric": (["--pred", f"a={fewer}", "--metrics", "psnr,fidd"], "unknown metric 'fidd'"),
        "unknown protocol": (["--pred", f"a={fewer}", "--protocol", "mine"], "unknown protocol 'mine'"),
        "bad pred": (["--pred", "nopath"], "expected NAME=PATH"),
        "unknown policy": (["--pred", f"a={fewer}", "--align", "stretch"], "unknown policy stretch"),
    }


def test_every_bad_input_is_one_line_and_exit_2(folders, capsys):
    tmp_path, gt, _ = folders
    for label, (args, message) in _bad_cases(tmp_path, gt).items():
        status = main(["eval", "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "o"), "--quiet", *args])
        err = capsys.readouterr().err
        assert status == 2, label
        lines = err.strip().splitlines()
        assert lines[-1].startswith("cabench: error:") and message in lines[-1], (label, err)


def test_console_entry_point_prints_one_line_or_the_traceback_with_debug(folders):
    """The real console entry (an interpreter of its own) prints one line; with --debug the error is
    raised out of ``main`` instead, so the interpreter prints its traceback (checked in this process:
    an uncaught exception's traceback is the interpreter's own doing, and a launch costs seconds)."""
    from metrics.errors import CabenchError

    tmp_path, _, _ = folders
    plain = _run("eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'absent'}")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == [f"cabench: error: {tmp_path / 'absent'}: no such file or folder"]
    with pytest.raises(CabenchError, match="no such file or folder"):
        main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'absent'}", "--debug"])


def test_weights_lists_files_and_where_it_looked(tmp_path, alexnet_in_hub, capsys):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "alexnet-owt-7be5be79.pth" in out and str(alexnet_in_hub) in out
    assert "vgg16-397923af.pth" in out and "missing" in out
    assert str(alexnet_in_hub.parent) in out


def test_unreadable_image_in_ground_truth_names_the_file(folders, capsys):
    import json

    from benchmark.results.store import Part

    tmp_path, _, _ = folders
    (tmp_path / "gt" / "00003.png").write_bytes(b"garbage")
    status = main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'same'}", "--batch-size", "2",
                   "--metrics", "l2", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "00003.png: unreadable" in err and len(err.strip().splitlines()) == 1
    folder = tmp_path / "o" / "parts" / "gt" / "gt" / "a" / "canonical"
    fingerprint = json.loads((folder / "l2.log").read_text().splitlines()[0])["fingerprint"]
    assert list(Part(folder, "l2", fingerprint).rows()["frame"]) == [0, 1]  # the batch computed before the error is kept


def test_all_metrics_missing_still_writes_a_summary(folders, torch_home, capsys):
    tmp_path, _, _ = folders
    status = main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'noisy'}", "--metrics", "lpips",
                   "--out", str(tmp_path / "o"), "--quiet"])
    assert status == 0
    assert "LPIPS: missing" in (tmp_path / "o" / "table1.md").read_text()
    assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'noisy'}", "--metrics", "lpips",
                 "--out", str(tmp_path / "o"), "--quiet", "--strict"]) == 2
    assert "--strict: metrics missing: lpips" in capsys.readouterr().err


def test_curves_and_floors_have_no_direction():
    from metrics import registry
    from reports.tables import _header

    assert _header("flow_gap", "flow_gap") == ("flow_gap (px)", "↓")
    assert _header("flow_mag_gt", "flow_mag_gt") == ("flow_mag_gt (px)", "")
    assert _header("warp_error_gt", "w")[1] == "" and _header("mi_epe_2", "m")[1] == "↓"
    assert registry.get("psnr").scores("psnr") and not registry.get("flow_gap").scores("flow_mag_pred")


def test_face_region_option(tmp_path, photos):
    face = np.ascontiguousarray(photos["astronaut"][20:276, 92:348])
    blocky = np.ascontiguousarray(cv2_pixelate(face, 16))
    write_frames(tmp_path / "gt", face[None])
    write_frames(tmp_path / "blocky", blocky[None])
    values = {}
    for region in ("gt", "detect"):
        out = tmp_path / f"out-{region}"
        assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"blocky={tmp_path / 'blocky'}", "--metrics", "lmd",
                     "--face-region", region, "--out", str(out), "--quiet"]) == 0
        values[region] = pd.read_csv(out / "per_frame.csv")["lmd"].iloc[0]
    assert values["gt"] > 0.05 and np.isnan(values["detect"])  # the blocky face is not detected, but it is measured


def cv2_pixelate(image: np.ndarray, block: int) -> np.ndarray:
    import cv2

    small = cv2.resize(image, (image.shape[1] // block, image.shape[0] // block), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)


def test_eval_and_run_write_the_same_result_table(folders, tmp_path, capsys):
    root, _, _ = folders
    assert main(["eval", "--gt", str(root / "gt"), "--pred", f"noisy={root / 'noisy'}", "--pred", f"same={root / 'same'}",
                 "--metrics", "l2,psnr,ssim,tof", "--protocol", "canonical,insta", "--out", str(tmp_path / "eval"),
                 "--quiet", "--no-plots"]) == 0
    (tmp_path / "run.toml").write_text(f"""
[run]
out = "by_run"
metrics = ["l2", "psnr", "ssim", "tof"]
protocol = ["canonical", "insta"]
split = "all"
[[datasets]]
kind = "frames"
path = "{root / 'gt'}"
[[methods]]
name = "noisy"
frames = "{root / 'noisy'}"
[[methods]]
name = "same"
adapter = "folder"
settings = {{ path = "{root / 'same'}" }}
""")
    assert main(["run", str(tmp_path / "run.toml"), "--quiet", "--no-plots"]) == 0
    by_eval = (tmp_path / "eval" / "per_frame.csv").read_bytes()
    assert by_eval == (tmp_path / "by_run" / "per_frame.csv").read_bytes()
    assert by_eval.startswith(b"dataset,sequence,method,frame,protocol,l2,psnr,ssim,tof\n") and b",insta," in by_eval
    capsys.readouterr()
    assert main(["run", str(tmp_path / "eval" / "config.toml"), "--no-plots"]) == 0  # eval's config, rerun by run
    assert "computed 0 (100% reused)" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_eval_stopped_by_a_signal_keeps_its_rows_and_says_so_in_one_line(tmp_path, photos, name, status, capsys):
    import os
    import signal
    import time

    frames = np.stack([photos["coffee"][i : i + 96, 2 * i : 2 * i + 96] for i in range(48)])
    write_frames(tmp_path / "gt", frames)
    write_frames(tmp_path / "pred", frames[:, ::-1].copy())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmark.cli", "eval", "--gt", str(tmp_path / "gt"), "--pred",
               f"a={tmp_path / 'pred'}", "--metrics", "psnr,ssim,tof", "--batch-size", "2", "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               preexec_fn=sigint_as_keyboard_interrupt)
    log = out / "parts" / "gt" / "gt" / "a" / "canonical" / "tof.log"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and (not log.exists() or log.read_text().count("#commit") < 2):
        time.sleep(0.02)
    process.send_signal(getattr(signal, name))
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "run the same command again to resume" in lines[0] and "Traceback" not in err, err
    assert lines[0].startswith("cabench: terminated (SIGTERM)" if name == "SIGTERM" else "cabench: interrupted")
    capsys.readouterr()
    assert main(command[3:-1]) == 0  # the same command again (in this process: the resume needs no signal)
    reused = int(re.search(r"reused (\d+) stored", capsys.readouterr().out).group(1))
    assert reused >= 3 * 2  # at least the first batch of each metric was kept
    assert len(pd.read_csv(out / "per_frame.csv")) == 48


def test_temporal_variants_are_options_of_eval(folders):
    tmp_path, _, _ = folders
    means = {}
    for crop in ("tecogan", "none"):
        out = tmp_path / crop
        assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'noisy'}", "--metrics", "tof,warp_error",
                     "--tof-crop", crop, "--warp-variant", "central", "--out", str(out), "--quiet"]) == 0
        means[crop] = pd.read_csv(out / "per_frame.csv")["tof"].iloc[1:].mean()
    assert means["tecogan"] != pytest.approx(means["none"], rel=1e-3)  # TecoGAN's border crop is applied


def test_a_video_without_alpha_against_a_matted_ground_truth_is_one_warning_line(folders, tmp_path, capsys):
    import cv2

    _, gt, _ = folders
    rgba = np.concatenate([gt, np.full(gt.shape[:3] + (1,), 255, np.uint8)], axis=-1)
    rgba[:, :8, :, 3] = 0  # a matte: the top rows are background
    write_frames(tmp_path / "gt_rgba", rgba)
    video = tmp_path / "pred.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (gt.shape[2], gt.shape[1]))
    for frame in gt:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    common = ["--metrics", "psnr", "--quiet", "--no-plots"]
    assert main(["eval", "--gt", str(tmp_path / "gt_rgba"), "--pred", f"video={video}", *common,
                 "--out", str(tmp_path / "o1")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cabench: warning:")]
    assert len(warnings) == 1 and "pred.avi" in warnings[0] and "no alpha" in warnings[0] and "gt_rgba" in warnings[0]
    # the same video against a ground truth without a matte, or RGBA frames against the matted one: no warning
    assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", f"video={video}", *common,
                 "--out", str(tmp_path / "o2")]) == 0
    assert main(["eval", "--gt", str(tmp_path / "gt_rgba"), "--pred", f"frames={tmp_path / 'gt_rgba'}", *common,
                 "--out", str(tmp_path / "o3")]) == 0
    assert "cabench: warning:" not in capsys.readouterr().err
