"""INSTA actor folders built in INSTA's exact layout, read back; malformed ones name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.datasets import detect_kind, open_dataset
from benchmark.datasets.insta import default_splits, read_insta
from metrics.errors import InputError

FRAMES = 8


def make_insta(root: Path, frames: int = FRAMES, test: int = 3, size: int = 16) -> Path:
    """An actor folder as INSTA's scripts/transforms.py and postprocess.py write it."""
    rng = np.random.default_rng(0)
    for sub in ("images", "seg_mask", "depth", "flame/exp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(frames):
        stem = f"{i:05d}"
        rgba = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
        rgba[0, 0, 3], rgba[0, 1, 3], rgba[0, 1, :3] = 0, 128, (100, 0, 200)
        Image.fromarray(rgba).save(root / "images" / f"{stem}.png")
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(root / "seg_mask" / f"{stem}.png")
        (root / "flame" / "exp" / f"{stem}.txt").write_text(" ".join(str(0.01 * i + k) for k in range(100)))
        entries.append({"file_path": f"images/{stem}.png", "transform_matrix": np.eye(4).tolist(),
                        "mesh_path": f"meshes/{stem}.obj", "exp_path": f"flame/exp/{stem}.txt",
                        "depth_path": f"depth/{stem}.png", "seg_mask_path": f"seg_mask/{stem}.png"})
    header = {"w": size, "h": size, "cx": size / 2, "cy": size / 2, "fl_x": 20.0, "fl_y": 20.0,
              "camera_angle_x": 0.7, "camera_angle_y": 0.7, "x_fov": 40.0, "y_fov": 40.0, "integer_depth_scale": 0.001}
    splits = {"train": entries[:-test], "test": entries[-test:], "val": entries[-2:]}
    (root / "transforms.json").write_text(json.dumps({**header, "frames": entries}))
    for name, part in splits.items():
        (root / f"transforms_{name}.json").write_text(json.dumps({**header, "frames": part}))
    return root


def test_reads_frames_splits_and_expressions(tmp_path):
    root = make_insta(tmp_path / "actor")
    seq = read_insta(root)
    assert seq.name == "actor" and seq.kind == "insta" and seq.fps is None
    assert seq.frame_ids == list(range(FRAMES))
    assert seq.splits == {"train": [0, 1, 2, 3, 4], "test": [5, 6, 7], "val": [6, 7]}
    assert seq.annotations["expression"].shape == (FRAMES, 100)
    assert seq.annotation("expression", [3])[0, 0] == pytest.approx(0.03)
    assert "pose" not in seq.annotations  # released INSTA data has only exp
    frames = seq.frames.read([2])
    assert frames.rgb[0, 0, 0].tolist() == [255, 255, 255]  # transparent -> white
    alpha = 128 / 255
    np.testing.assert_allclose(frames.rgb[0, 0, 1], np.rint(np.array([100, 0, 200]) * alpha + 255 * (1 - alpha)), atol=1)
    assert seq.mask.read([2]).alpha[0, 0, 1] == pytest.approx(alpha)


def test_insta_default_split_rule():
    splits = default_splits(list(range(400)))
    assert splits["test"] == list(range(50, 400)) and splits["train"] == list(range(50))
    assert splits["val"] == list(range(380, 400))


def test_detects_one_actor_or_a_folder_of_actors(tmp_path):
    make_insta(tmp_path / "a")
    make_insta(tmp_path / "b", frames=5)
    assert detect_kind(tmp_path / "a") == "insta"
    dataset = open_dataset(tmp_path)
    assert dataset.kind == "insta" and dataset.names() == ["a", "b"]
    assert len(dataset.sequence("b").frame_ids) == 5
    with pytest.raises(InputError, match="not a dataset folder"):
        open_dataset(tmp_path / "a" / "images")
    with pytest.raises(InputError, match="not nerface"):
        open_dataset(tmp_path / "a", kind="nerface")


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, names", [
    (lambda r: _edit(r / "transforms.json", lambda d: d.pop("frames")), ("transforms.json", "'frames'")),
    (lambda r: _edit(r / "transforms.json", lambda d: d["frames"][3].pop("file_path")), ("transforms.json", "frames[3]")),
    (lambda r: (r / "images" / "00004.png").unlink(), ("00004.png",)),
    (lambda r: (r / "flame" / "exp" / "00002.txt").unlink(), ("00002.txt",)),
    (lambda r: (r / "flame" / "exp" / "00002.txt").write_text("1 2 x"), ("00002.txt",)),
    (lambda r: (r / "transforms.json").write_text("{not json"), ("transforms.json", "json")),
    (lambda r: _edit(r / "transforms_test.json", lambda d: d["frames"].append({"file_path": "images/00099.png"})),
     ("transforms_test.json", "99")),
])
def test_malformed_folders_name_the_file(tmp_path, damage, names):
    root = make_insta(tmp_path / "actor")
    damage(root)
    with pytest.raises(InputError) as error:
        read_insta(root)
    for part in names:
        assert part in str(error.value)
