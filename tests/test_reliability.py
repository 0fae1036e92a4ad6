"""Reliability: stale inputs are recomputed, a run folder cannot direct writes outside itself, bad values
are refused up front with one line, and signals at start-up end a command with one line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark import runner
from benchmark.cli import main
from benchmark.config import DatasetConfig, MethodConfig
from benchmark.io import write_frames
from tests.run_helpers import config, moving_crop

FRAMES = 6


def _run(run_config) -> runner.RunReport:
    return runner.run_config(run_config, progress=False, plots=False, report=False, log=lambda m: None)


def _edit_middle_keeping_size_and_mtime(path: Path) -> None:
    """Change bytes in the middle of an uncompressed file, keep its size and restore its mtime (as ``cp -p``,
    ``rsync -t`` or an archive extraction would leave it)."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 300] = bytes(255 - b for b in data[middle : middle + 300])
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def _bmp_run(tmp_path: Path) -> tuple:
    gt = moving_crop(FRAMES, 128)  # a 128x128 grey BMP mask is 17 KB: more than two 4 KiB ends
    noisy = np.clip(gt + np.random.default_rng(0).normal(0, 6, gt.shape), 0, 255).astype(np.uint8)
    masks = np.zeros(gt.shape[:3], np.uint8)
    masks[:, 16:112, 16:112] = 255
    write_frames(tmp_path / "gt", gt, ext="bmp")
    write_frames(tmp_path / "pred", noisy, ext="bmp")
    (tmp_path / "mask").mkdir()
    for i, mask in enumerate(masks):
        Image.fromarray(mask).save(tmp_path / "mask" / f"{i:05d}.bmp")
    run = config({"root": tmp_path}, tmp_path / "out")
    run = run.replace(datasets=(DatasetConfig(name="synthetic", path=str(tmp_path / "gt"), kind="frames",
                                                           mask=str(tmp_path / "mask")),),
                              methods=(MethodConfig(name="pred", frames=str(tmp_path / "pred")),), metrics=("l2", "psnr"),
                              mask=True)
    return run


@pytest.mark.parametrize("edited", ["pred", "gt", "mask"])
def test_an_edit_that_keeps_size_and_mtime_is_recomputed(tmp_path, edited):
    run = _bmp_run(tmp_path)
    first = _run(run)
    assert first.computed_frames == 2 * FRAMES
    before = pd.read_csv(tmp_path / "out" / "per_frame.csv").sort_values("frame")
    _edit_middle_keeping_size_and_mtime(tmp_path / edited / "00003.bmp")
    again = _run(run)
    assert again.computed_frames > 0 and again.computed_parts
    after = pd.read_csv(tmp_path / "out" / "per_frame.csv").sort_values("frame")
    assert before.loc[before.frame == 3, "l2"].item() != after.loc[after.frame == 3, "l2"].item()
    assert _run(run).computed_frames == 0  # unchanged since: reused


# ---------------------------------------------------------------------------- one clear line, exit status 2


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cabench: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    """Ground truth of 12 frames, a prediction with a 13th frame (id 12), and one with the same 12."""
    root = tmp_path_factory.mktemp("frames")
    gt = moving_crop(12, 48)
    write_frames(root / "gt", gt)
    write_frames(root / "extra", np.concatenate([gt, gt[:1]]))
    write_frames(root / "noisy", np.clip(gt + np.random.default_rng(1).normal(0, 8, gt.shape), 0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def finished_run(frames, tmp_path_factory) -> Path:
    """A finished `cabench eval` run folder of two methods whose names are HTML."""
    out = tmp_path_factory.mktemp("runs") / "run"
    status = main(["eval", "--gt", str(frames / "gt"), "--pred", f"<script>alert(1)</script>={frames / 'noisy'}",
                   "--pred", f"<b>gt</b>={frames / 'gt'}", "--metrics", "l2,psnr", "--out", str(out),
                   "--quiet"])
    assert status == 0
    return out


def _copy_run(run: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_d1_an_extra_prediction_frame_is_refused_unless_intersect(frames, tmp_path, capsys):
    args = ["eval", "--gt", str(frames / "gt"), "--pred", f"a={frames / 'extra'}", "--metrics", "l2", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    line = _one_error_line(capsys)
    assert "extra frames 12" in line and str(frames / "extra") in line and "--align intersect" in line
    assert main([*args, "--out", str(tmp_path / "b"), "--align", "intersect"]) == 0
    assert len(pd.read_csv(tmp_path / "b" / "per_frame.csv")) == 12


def test_d2_a_linked_lock_file_is_not_followed(finished_run, frames, tmp_path, capsys):
    out = _copy_run(finished_run, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / ".cabench" / "lock").unlink()
    (out / ".cabench" / "lock").symlink_to(victim)
    status = main(["eval", "--gt", str(frames / "gt"), "--pred", f"a={frames / 'noisy'}", "--metrics", "l2",
                   "--out", str(out), "--quiet"])
    assert status == 2 and "symbolic link" in _one_error_line(capsys)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("linked", ["plots", "parts", "cache"])
def test_d5_linked_folders_of_a_run_folder_are_refused(finished_run, frames, tmp_path, capsys, linked):
    out = _copy_run(finished_run, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    import shutil

    if (out / linked).exists():
        shutil.rmtree(out / linked)
    (out / linked).symlink_to(outside, target_is_directory=True)
    status = main(["eval", "--gt", str(frames / "gt"), "--pred", f"b={frames / 'noisy'}", "--metrics", "l1",
                   "--out", str(out), "--quiet"])
    assert status == 2 and f"{out / linked}: a symbolic link" in _one_error_line(capsys)
    for command in (["plots", "--run", str(out)], ["tables", "--run", str(out)], ["compare", "--run", str(out)]):
        assert main(command) == 2 and "symbolic link" in _one_error_line(capsys)
    assert list(outside.iterdir()) == []


def test_d4_compare_md_escapes_names(finished_run, tmp_path, capsys):
    out = _copy_run(finished_run, tmp_path)
    assert main(["compare", "--run", str(out), "--resamples", "50"]) == 0
    text = (out / "compare.md").read_text()
    assert "<script>" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_d13_compare_seed_must_be_non_negative(finished_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["compare", "--run", str(finished_run), "--seed", "-3"])
    assert stop.value.code == 2
    assert "--seed: must be a non-negative integer, got -3" in capsys.readouterr().err


def _write_config(tmp_path: Path, frames: Path, run: str = "", settings: str = 'degradation = "flicker"') -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'[run]\nout = "{tmp_path / "out"}"\nmetrics = ["l2"]\nsplit = "all"\n{run}\n'
                    f'[[datasets]]\npath = "{frames / "gt"}"\nkind = "frames"\n'
                    f'[[methods]]\nname = "m"\nadapter = "degraded"\nsettings = {{ {settings} }}\n')
    return path


@pytest.mark.parametrize("settings, expected", [
    ('degradation = "oversmooth", strength = -3.0', "strength -3.0 for oversmooth"),
    ('degradation = "oversmooth", strength = 0.0', "strength 0.0 for oversmooth"),
    ('degradation = "jitter", strength = 1e9', "strength 1000000000.0 for jitter"),
    ('degradation = "flicker", strength = nan', "settings.strength: Input should be a finite number"),
    ('degradation = "flicker", strength = inf', "settings.strength: Input should be a finite number"),
    ('degradation = "flicker", seed = -1', "seed -1"),
])
def test_d8_adapter_settings_out_of_range_or_not_finite(frames, tmp_path, capsys, settings, expected):
    assert main(["run", str(_write_config(tmp_path, frames, settings=settings))]) == 2
    assert expected in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_d6_split_must_be_a_known_split(frames, tmp_path, capsys):
    config_path = _write_config(tmp_path, frames)
    config_path.write_text(config_path.read_text().replace('split = "all"', 'split = "valid"'))
    assert main(["run", str(config_path)]) == 2
    assert "run.split" in _one_error_line(capsys) and not (tmp_path / "out").exists()


def test_d7_bootstrap_bounds_are_checked_when_the_config_is_read(frames, tmp_path, capsys):
    config_path = _write_config(tmp_path, frames, run="bootstrap = { resamples = 1000000000000 }")
    assert main(["run", str(config_path)]) == 2
    assert "run.bootstrap.resamples: must be an integer from 2 to 100,000" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()  # refused before anything was computed


@pytest.mark.parametrize("cell, column, expected", [("abc", "l2", "'abc' is not a number"),
                                                    ("x", "frame", "'x' is not an integer frame id"),
                                                    ("2.5", "frame", "is not an integer frame id")])
def test_d9_d10_per_frame_values_must_be_numbers(finished_run, tmp_path, capsys, cell, column, expected):
    out = _copy_run(finished_run, tmp_path)
    table = pd.read_csv(out / "per_frame.csv", dtype=str, keep_default_na=False)
    table.loc[3, column] = cell
    table.to_csv(out / "per_frame.csv", index=False)
    for command in ("tables", "compare"):
        assert main([command, "--run", str(out)]) == 2
        line = _one_error_line(capsys)
        assert f"{out / 'per_frame.csv'}: line 5, column {column}" in line and expected in line


def test_d11_d12_bad_landmarks_name_the_file_and_the_option(frames, tmp_path, capsys):
    values = np.zeros((12, 68, 2))
    values[3, 5, 0] = np.nan
    np.save(tmp_path / "nan.npy", values)
    values[3, 5, 0] = np.inf
    np.save(tmp_path / "inf.npy", values)
    (tmp_path / "empty.npy").write_bytes(b"")
    for name, expected in (("nan", "NaN or infinite values for frame(s) 3"), ("inf", "for frame(s) 3"),
                           ("empty", "the file is empty")):
        status = main(["eval", "--gt", str(frames / "gt"), "--pred", f"a={frames / 'noisy'}", "--metrics", "l2",
                       "--landmarks", str(tmp_path / f"{name}.npy"), "--out", str(tmp_path / name), "--quiet"])
        line = _one_error_line(capsys)
        assert status == 2 and str(tmp_path / f"{name}.npy") in line and "--landmarks" in line and expected in line


@pytest.mark.parametrize("option, value", [("--frames", "1000000000"), ("--frames", "100001"), ("--size", "1000000"), ("--size", "2049")])
def test_d14_synth_bounds_are_checked_before_anything_is_made(tmp_path, capsys, option, value):
    assert main(["synth", "--out", str(tmp_path / "s"), option, value, "--quiet"]) == 2
    assert option in _one_error_line(capsys) and not (tmp_path / "s").exists()


def test_d15_ctrl_c_while_the_commands_are_loaded_is_one_line(monkeypatch, capsys):
    from benchmark import cli

    def interrupted():
        raise KeyboardInterrupt  # as Ctrl-C during the imports of the command modules

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        status = main(["tables", "--run", "x"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped cabench's main (a traceback for the user)")
    assert status == 130
    assert capsys.readouterr().err.strip().splitlines() == ["cabench: interrupted"]


def test_d15_sigterm_while_the_libraries_load_is_one_line(frames, tmp_path):
    """SIGTERM once the command imports torch (its libraries, at start-up): status 143 and one line."""
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, "-m", "benchmark", "eval", "--gt", str(frames / "gt"), "--pred",
                              f"a={frames / 'noisy'}", "--metrics", "l2", "--out", str(tmp_path / "o"), "--quiet"],
                             cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{child.pid}/maps")
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.002)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err[-2000:]
    assert err.strip().splitlines() == ["cabench: terminated (SIGTERM)"]


def test_lmk_pose_noise_floor_is_as_documented(tmp_path):
    """docs/reliability.md: on `cabench synth`'s 48 frames at 256 px, the ground truth against itself
    re-encoded or blurred scores a mean lmk_pose below 2 degrees, and 0 against itself unchanged."""
    import io

    import cv2

    from benchmark import evaluate
    from benchmark.datasets.synthetic import write_sequence
    from benchmark.io import open_frames

    source = open_frames(write_sequence(tmp_path, frames=48, size=256, progress=False) / "images")
    gt = source.read(source.frame_ids).rgb

    def jpeg(quality: int) -> np.ndarray:
        frames = []
        for frame in gt:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, "JPEG", quality=quality)
            frames.append(np.asarray(Image.open(buffer).convert("RGB")))
        return np.stack(frames)

    truth = tmp_path / "truth"  # the ground truth's faces and landmarks found once for the four scorings
    same = evaluate(pred=gt.copy(), gt=gt, metrics=["lmk_pose"], progress=False, truth_cache=truth).frames["lmk_pose"]
    assert same.notna().sum() == 48 and same.max() == 0
    for pred in (jpeg(90), jpeg(50), np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in gt])):
        degrees = evaluate(pred=pred, gt=gt, metrics=["lmk_pose"], progress=False, truth_cache=truth).frames["lmk_pose"]
        assert 0.5 < degrees.mean() < 2.0 and degrees.max() < 8.0, degrees.describe()


def test_the_command_line_caps_the_allocators_arenas(frames, tmp_path):
    """benchmark.allocator: after a whole `cabench eval` (read-ahead thread, worker threads, torch), glibc
    holds at most two malloc arenas, whatever the threads did (malloc_info counts them)."""
    import subprocess
    import sys

    code = f"""
import ctypes, os, re, sys, tempfile
from benchmark.cli import main
assert main(["eval", "--gt", {str(frames / "gt")!r}, "--pred", "a={frames / "noisy"}", "--metrics", "l2,psnr,ssim",
             "--out", {str(tmp_path / "out")!r}, "--quiet", "--batch-size", "3"]) == 0
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes, libc.fclose.argtypes = (ctypes.c_int, ctypes.c_void_p), (ctypes.c_void_p,)
path = {str(tmp_path / "malloc.xml")!r}
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print(len(re.findall('<heap nr=', open(path).read())))
"""
    environment = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            cwd=Path(__file__).resolve().parents[1], env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 1 <= int(result.stdout.strip().splitlines()[-1]) <= 2


def test_the_engine_keeps_no_rows_per_frame(frames):
    from benchmark import evaluate

    seen = []
    result = evaluate(pred=str(frames / "noisy"), gt=str(frames / "gt"), metrics=["l2"], progress=False, batch_size=4,
                      on_rows=seen.append, keep_rows=False)
    assert sum(len(chunk) for chunk in seen) == 12 and result.frames.empty
