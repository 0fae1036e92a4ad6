"""External programs (INSTA, DiffusionRig, SadTalker) replaced by fakes that follow their command lines.

Each fake parses the real program's flags and writes what the real one writes; the environment
variable FAKE_MODE makes it fail the ways the real ones do: ``fail`` (non-zero exit with a
message on stderr), ``none`` (exit 0, no output), ``short`` (too few frames), ``sleep`` (hang).
The data folder has a space and a quote in its path, to show no shell is involved.
"""

from __future__ import annotations

import stat
import sys
import textwrap
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

import baselines
from baselines.sadtalker import map_frames
from benchmark.datasets import open_dataset
from benchmark.datasets.synthetic import write_sequence
from metrics.errors import CabenchError, InputError
from tests.run_helpers import sigint_as_keyboard_interrupt

FAILURES = textwrap.dedent("""
    import os, sys, time
    MODE = os.environ.get("FAKE_MODE", "")
    if MODE == "fail":
        print("RuntimeError: CUDA out of memory", file=sys.stderr)
        sys.exit(3)
    if MODE == "sleep":
        time.sleep(30)
""")


def _program(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n" + FAILURES + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return cv2.PSNR(np.ascontiguousarray(a), np.ascontiguousarray(b))


@pytest.fixture
def seq(tmp_path):
    root = tmp_path / "data with space 'q'"
    write_sequence(root, frames=16, size=64, seed=2, progress=False)
    return open_dataset(root / "astronaut").sequences[0]


# ---------------------------------------------------------------- INSTA
INSTA_BODY = """
    import argparse, json, shutil
    from pathlib import Path
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--scene", required=True)
    p.add_argument("--snapshot")
    p.add_argument("--no-gui", action="store_true")
    a = p.parse_args()
    scene = Path(a.scene)
    frames = json.loads(scene.read_text())["frames"]
    out = scene.parent / "experiments" / Path(a.config).stem / "debug" / "overlay"
    out.mkdir(parents=True, exist_ok=True)
    if MODE == "none":
        sys.exit(0)
    if MODE == "short":
        frames = frames[:-1]
    for i, f in enumerate(frames):  # the recorder names renders by test index
        shutil.copy(scene.parent / f["file_path"], out / f"{i:05d}.png")
"""


def _insta(tmp_path, **extra):
    rta = _program(tmp_path / "bin dir" / "rta", INSTA_BODY)
    command = [str(rta), "--config", "{experiment}.json", "--scene", "{test_json}", "--no-gui"]
    return baselines.create_adapter("insta", experiment="rerun", command=command, **extra)


def test_insta_binary_writes_renders_that_are_read_by_index(seq, tmp_path):
    adapter = _insta(tmp_path)
    out_output = adapter.outputs(seq)
    out = out_output.frames
    ids = seq.splits["test"]
    assert out.frame_ids == ids and out_output.alignment["ran"]
    np.testing.assert_array_equal(out.read(ids).rgb, seq.frames.read(ids).rgb)


@pytest.mark.parametrize("mode, match", [
    ("fail", "exited with status 3: RuntimeError: CUDA out of memory"),
    ("none", "00000.png: INSTA renders"),
    ("short", "00003.png"),
    ("sleep", "did not finish within 1 s"),
])
def test_insta_binary_failures(seq, tmp_path, monkeypatch, mode, match):
    monkeypatch.setenv("FAKE_MODE", mode)
    with pytest.raises(CabenchError, match=match):
        _insta(tmp_path, timeout=1).outputs(seq)


def test_absent_program_is_named(seq):
    adapter = baselines.create_adapter("insta", command=["/nonexistent dir/rta", "--no-gui"])
    with pytest.raises(CabenchError, match="program /nonexistent dir/rta not found"):
        adapter.outputs(seq)
    with pytest.raises(CabenchError, match="setting command: expected a list"):
        baselines.create_adapter("insta", command="rta --no-gui")
    with pytest.raises(CabenchError, match="must be a non-empty list"):
        baselines.create_adapter("insta", command=[])


# ---------------------------------------------------------------- DiffusionRig
DIFFUSIONRIG_BODY = """
    import argparse, glob, os
    from pathlib import Path
    from PIL import Image
    p = argparse.ArgumentParser()
    for flag in ("--source", "--target", "--output_dir", "--model_path", "--meanshape"):
        p.add_argument(flag, required=True)
    p.add_argument("--modes", default="pose,exp,light")
    p.add_argument("--timestep_respacing", default="")
    a = p.parse_args()
    if not os.path.isfile(a.model_path):
        print(f"FileNotFoundError: {a.model_path}", file=sys.stderr)
        sys.exit(1)
    sources = glob.glob(os.path.join(a.source, "*")) if os.path.isdir(a.source) else [a.source]
    os.makedirs(a.output_dir, exist_ok=True)
    target = Image.open(a.target).convert("RGB").resize((256, 256), Image.BICUBIC)
    if MODE != "none":
        for idx, _ in enumerate(sources):
            for mode in a.modes.split(","):
                target.save(os.path.join(a.output_dir, f"{idx}_{mode}.png"))
"""


def _diffusionrig(tmp_path, **extra):
    repo = tmp_path / "diffusion rig"
    _program(repo / "scripts" / "inference.py", DIFFUSIONRIG_BODY)
    (tmp_path / "model.pt").write_bytes(b"x")
    settings = dict(repo=str(repo), model_path=str(tmp_path / "model.pt"), meanshape=str(tmp_path / "mean_shape.pkl"),
                    work_dir=str(tmp_path / "work"))
    return baselines.create_adapter("diffusionrig", **{**settings, **extra})


def test_diffusionrig_runs_per_frame_and_resizes_only_when_asked(seq, tmp_path):
    with pytest.raises(InputError, match="outputs are 256x256, ground truth is 64x64; set resize"):
        _diffusionrig(tmp_path).outputs(seq)
    adapter = _diffusionrig(tmp_path, resize="area")
    out_output = adapter.outputs(seq)
    out = out_output.frames
    ids = seq.splits["test"]
    assert out.frame_ids == ids and out.size == (64, 64)
    assert out_output.alignment["resize"] == "area 256x256 -> 64x64"
    for pred, gt in zip(out.read(ids).rgb, seq.frames.read(ids).rgb):
        assert _psnr(pred, gt) > 30  # the fake returns the target: the round trip is near lossless


@pytest.mark.parametrize("mode, match", [("fail", "exited with status 3"), ("none", "0_exp.png: DiffusionRig wrote no output")])
def test_diffusionrig_failures(seq, tmp_path, monkeypatch, mode, match):
    monkeypatch.setenv("FAKE_MODE", mode)
    with pytest.raises(CabenchError, match=match):
        _diffusionrig(tmp_path, resize="area").outputs(seq)


def test_diffusionrig_missing_checkpoint_and_script(seq, tmp_path):
    with pytest.raises(CabenchError, match="status 1: FileNotFoundError"):
        _diffusionrig(tmp_path, model_path=str(tmp_path / "absent.pt")).outputs(seq)
    adapter = baselines.create_adapter("diffusionrig", repo=str(tmp_path / "nowhere"), model_path="m", meanshape="s")
    with pytest.raises(CabenchError, match="inference.py: DiffusionRig's inference script not found"):
        adapter.outputs(seq)


def test_diffusionrig_stored_outputs_count(seq, tmp_path):
    ids = seq.splits["test"]
    folder = tmp_path / "stored"
    folder.mkdir()
    for index, rgb in enumerate(seq.frames.read(ids).rgb):
        cv2.imwrite(str(folder / f"{index}_exp.png"), rgb[..., ::-1])
    out_output = baselines.create_adapter("diffusionrig", outputs=str(folder)).outputs(seq)
    out = out_output.frames
    np.testing.assert_array_equal(out.read(ids).rgb, seq.frames.read(ids).rgb)
    cv2.imwrite(str(folder / f"{len(ids)}_exp.png"), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="5 files match"):
        baselines.create_adapter("diffusionrig", outputs=str(folder)).outputs(seq)


# ---------------------------------------------------------------- SadTalker
SADTALKER_BODY = """
    import argparse, time, wave
    import cv2
    from pathlib import Path
    p = argparse.ArgumentParser()
    p.add_argument("--driven_audio", required=True)
    p.add_argument("--source_image", required=True)
    p.add_argument("--ref_eyeblink")
    p.add_argument("--ref_pose")
    p.add_argument("--checkpoint_dir", default="./checkpoints")
    p.add_argument("--result_dir", default="./results")
    p.add_argument("--pose_style", type=int, default=0)
    p.add_argument("--batch_size", type=int, default=2)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--expression_scale", type=float, default=1.0)
    p.add_argument("--enhancer")
    p.add_argument("--still", action="store_true")
    p.add_argument("--preprocess", default="crop", choices=["crop", "extcrop", "resize", "full", "extfull"])
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    with wave.open(a.driven_audio) as w:
        seconds = w.getnframes() / w.getframerate()
    count = int(seconds * 25)  # SadTalker: int(audio_len_s * 25) frames at 25 fps
    if MODE == "short":
        count -= 2
    ref = cv2.VideoCapture(a.ref_pose)
    ref_fps = ref.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = ref.read()
        if not ok:
            break
        frames.append(frame)
    if MODE == "none":
        sys.exit(0)
    h, w = cv2.imread(a.source_image).shape[:2]  # --preprocess full: pasted back at the source size
    out = Path(a.result_dir) / (time.strftime("%Y_%m_%d_%H.%M.%S") + ".mp4")
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for i in range(count):
        writer.write(frames[min(len(frames) - 1, round(i / 25 * ref_fps))])
    writer.release()
"""


def _audio(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(int(16000 * seconds), np.int16).tobytes())
    return path


def _sadtalker(seq, tmp_path, **extra):
    repo = tmp_path / "sad talker"
    _program(repo / "inference.py", SADTALKER_BODY)
    audio = _audio(tmp_path / "speech.wav", len(seq.splits["test"]) / 12.5)
    settings = dict(repo=str(repo), audio=str(audio), gt_fps=12.5, result_dir=str(tmp_path / "work"))
    return baselines.create_adapter("sadtalker", **{**settings, **extra})


def test_sadtalker_maps_25_fps_onto_the_ground_truth(seq, tmp_path):
    adapter = _sadtalker(seq, tmp_path)
    out_output = adapter.outputs(seq)
    out = out_output.frames
    ids = seq.splits["test"]
    assert out.frame_ids == ids and out_output.alignment["video_frames"] == 2 * len(ids)
    assert out_output.alignment["fps"] == "25 -> 12.5 (nearest frame)" and out_output.alignment["frame_count"] == "exact"
    for pred, gt in zip(out.read(ids).rgb, seq.frames.read(ids).rgb):
        assert _psnr(pred, gt) > 24  # two mp4v encodes of the same frame


def test_sadtalker_frame_count_policies(seq, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "short")
    with pytest.raises(InputError, match=r"has 6 frames, 8 expected .* \(set frame_count"):
        _sadtalker(seq, tmp_path).outputs(seq)
    with pytest.raises(InputError, match="6 frames, 7 needed"):
        _sadtalker(seq, tmp_path, frame_count="trim").outputs(seq)
    adapter = _sadtalker(seq, tmp_path, frame_count="pad", max_pad=1)
    out_output = adapter.outputs(seq)
    out = out_output.frames
    assert out_output.alignment["frame_count"] == "pad"
    last = out.read(seq.splits["test"][-2:]).rgb
    np.testing.assert_array_equal(last[0], last[1])  # the missing last frame repeats the one before


@pytest.mark.parametrize("mode, match", [("fail", "exited with status 3: RuntimeError"), ("none", "wrote no mp4")])
def test_sadtalker_failures(seq, tmp_path, monkeypatch, mode, match):
    monkeypatch.setenv("FAKE_MODE", mode)
    with pytest.raises(CabenchError, match=match):
        _sadtalker(seq, tmp_path).outputs(seq)


def test_sadtalker_takes_the_sequence_audio(tmp_path):
    """Without an audio setting, SadTalker is driven by the sequence's own track, cut to the test
    split's span: its length decides how many frames SadTalker writes (int(seconds * 25))."""
    from scipy.io import wavfile

    write_sequence(tmp_path / "data", frames=16, size=64, seed=2, progress=False, audio=True)
    seq = open_dataset(tmp_path / "data" / "astronaut").sequences[0]
    adapter = _sadtalker(seq, tmp_path, audio=None, gt_fps=None)
    out = adapter.outputs(seq).frames
    assert out.frame_ids == seq.splits["test"]
    rate, driving = wavfile.read(tmp_path / "work" / "driving_audio.wav")
    full = seq.audio()
    first = seq.frame_ids.index(seq.splits["test"][0])
    per_frame = rate // 25
    assert len(driving) == len(seq.splits["test"]) * per_frame
    np.testing.assert_array_equal(driving, full.samples[first * per_frame:(first + len(seq.splits["test"])) * per_frame])


def test_sadtalker_needs_a_frame_rate_and_audio(seq, tmp_path):
    from dataclasses import replace

    with pytest.raises(CabenchError, match="records no frame rate; set gt_fps"):
        baselines.create_adapter("sadtalker", video="x.mp4").outputs(replace(seq, fps=None))
    (tmp_path / "inference.py").write_text("")
    with pytest.raises(CabenchError, match="needs audio: .* has none"):
        baselines.create_adapter("sadtalker", repo=str(tmp_path)).outputs(replace(seq, audio_file=None))


def test_map_frames_closed_forms():
    assert map_frames(4, 25, 4, 25, "exact", 0, "v") == [0, 1, 2, 3]
    assert map_frames(3, 12.5, 6, 25, "exact", 0, "v") == [0, 2, 4]
    assert map_frames(6, 30, 5, 25, "exact", 0, "v") == [0, 1, 2, 3, 3, 4]  # nearest frame, 30 -> 25 fps
    assert map_frames(3, 25, 10, 25, "trim", 0, "v") == [0, 1, 2]
    with pytest.raises(InputError, match="10 frames, 3 expected"):
        map_frames(3, 25, 10, 25, "exact", 0, "v")


# ---------------------------------------------------------------- process groups, placeholders, temporary folders
# A wrapper that starts two background children and writes every pid it started (and its own) to $0.
WRAPPER = 'sleep 30 & echo $! >> "$0"; sleep 30 & echo $! >> "$0"; echo $$ >> "$0"; wait'


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's bookkeeping is left


def _pids(path: Path, count: int, timeout: float = 20.0) -> list[int]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return [int(p) for p in lines]
        time.sleep(0.05)
    raise AssertionError(f"{path}: the wrapper did not start")


def test_a_timed_out_program_ends_with_everything_it_started(tmp_path):
    from baselines.external import run_program

    pidfile = tmp_path / "pids"
    with pytest.raises(CabenchError, match="did not finish within 1 s"):
        run_program(["sh", "-c", WRAPPER, str(pidfile)], what="wrapper", timeout=1)
    pids = _pids(pidfile, 3)
    assert not [pid for pid in pids if _alive(pid)]


def test_what_a_finished_program_leaves_running_is_ended_and_does_not_hold_cabench_up(tmp_path):
    import time

    from baselines.external import run_program

    pidfile = tmp_path / "pids"
    start = time.monotonic()
    done = run_program(["sh", "-c", 'sleep 30 & echo $! > "$0"; echo started', str(pidfile)], what="wrapper", timeout=20)
    assert done.stdout.strip() == "started" and time.monotonic() - start < 10
    assert not _alive(_pids(pidfile, 1)[0])


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_an_interrupted_cabench_ends_the_program_group(tmp_path, signum):
    import signal
    import subprocess

    pidfile = tmp_path / "pids"
    code = ("from baselines.external import run_program\n"
            f"run_program(['sh', '-c', {WRAPPER!r}, {str(pidfile)!r}], what='wrapper', timeout=60)\n")
    cabench = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=sigint_as_keyboard_interrupt)
    try:
        pids = _pids(pidfile, 3)
        cabench.send_signal(getattr(signal, signum))
        _, err = cabench.communicate(timeout=30)
    finally:
        cabench.kill()
    assert cabench.returncode != 0
    if signum == "SIGINT":
        assert "KeyboardInterrupt" in err
    else:
        assert cabench.returncode == -signal.SIGTERM  # the default action of SIGTERM, after the group ended
    assert not [pid for pid in pids if _alive(pid)]


def test_insta_placeholders_are_absolute_for_a_dataset_opened_by_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_sequence(Path("data"), frames=8, size=64, seed=3, progress=False)
    relative = open_dataset(Path("data") / "astronaut").sequences[0]
    assert not Path(relative.root).is_absolute()
    out = _insta(tmp_path).outputs(relative)  # runs with cwd = the actor folder, reads {test_json}
    assert (tmp_path / "data" / "astronaut" / "experiments" / "rerun" / "debug" / "overlay" / "00000.png").is_file()
    assert not (tmp_path / "data" / "astronaut" / "data").exists()  # not root/root/...
    assert out.frames.frame_ids == relative.splits["test"]


@pytest.mark.parametrize("adapter", ["sadtalker", "diffusionrig"])
def test_a_failed_program_leaves_no_temporary_folder(seq, tmp_path, monkeypatch, adapter):
    import tempfile

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setenv("FAKE_MODE", "fail")
    make = _sadtalker if adapter == "sadtalker" else (lambda seq, tmp_path, **extra: _diffusionrig(tmp_path, **extra))
    with pytest.raises(CabenchError, match="exited with status 3"):
        make(seq, tmp_path, **{"result_dir" if adapter == "sadtalker" else "work_dir": None}).outputs(seq)
    assert list(temporary.iterdir()) == []
