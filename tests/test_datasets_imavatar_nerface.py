"""IMavatar / PointAvatar and NeRFace folders in their exact layouts; malformed ones name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.datasets import open_dataset
from benchmark.datasets.imavatar import read_video
from benchmark.datasets.nerface import read_nerface
from metrics.errors import InputError

SIZE = 16


def make_imavatar(root: Path, video: str = "MVI_1812", frames: int = 4) -> Path:
    """<subject>/<subject>/<video>/{image/N.png, mask/N.png, flame_params.json}, N from 1."""
    folder = root / "subject1" / "subject1" / video
    (folder / "image").mkdir(parents=True)
    (folder / "mask").mkdir()
    rng = np.random.default_rng(1)
    entries = []
    for n in range(1, frames + 1):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / "image" / f"{n}.png")
        Image.fromarray(np.full((SIZE, SIZE), 255 if n % 2 else 0, np.uint8)).save(folder / "mask" / f"{n}.png")
        entries.append({"file_path": f"./image/{n}", "world_mat": np.eye(4)[:3].tolist(),
                        "expression": [0.1 * n] * 50, "pose": list(range(n, n + 15)),
                        "bbox": [-1, -1, 1, 1], "flame_keypoints": np.full((70, 2), -0.5 + 0.1 * n).tolist()})
    data = {"shape_params": [0.0] * 100, "intrinsics": [1.5, 1.5, 0.5, 0.5], "frames": entries}
    (folder / "flame_params.json").write_text(json.dumps(data))
    return folder


def test_imavatar_video(tmp_path):
    folder = make_imavatar(tmp_path)
    dataset = open_dataset(tmp_path)
    assert dataset.kind == "imavatar"
    seq = dataset.sequences[0]
    assert seq.name == "subject1/MVI_1812" and seq.root == folder
    assert seq.frame_ids == [1, 2, 3, 4]  # 1-based, as the files
    assert seq.split_ids("test") == [1, 2, 3, 4]  # a video is the split unit
    assert seq.annotations["expression"].shape == (4, 50)
    assert seq.annotations["pose_full"].shape == (4, 15)
    np.testing.assert_array_equal(seq.annotation("pose", [2])[0], [2, 3, 4, 8, 9, 10])  # global + jaw
    # IMavatar's metric script: (k + 1) * res / 2
    np.testing.assert_allclose(seq.annotation("landmarks", [3])[0], np.full((68, 2), (-0.5 + 0.3 + 1) * SIZE / 2))
    assert seq.mask.read([1, 2]).alpha[:, 0, 0].tolist() == [1.0, 0.0]
    # the MODNet matte is the frames' matte: composited on white, colour as stored kept
    frames = seq.frames.read([1, 2])
    assert frames.alpha[:, 0, 0].tolist() == [1.0, 0.0] and (frames.rgb[1] == 255).all()
    np.testing.assert_array_equal(frames.rgb[0], frames.colour[0])
    assert open_dataset(tmp_path, kind="pointavatar").sequences[0].frame_ids == [1, 2, 3, 4]


@pytest.mark.parametrize("damage, names", [
    (lambda f: _edit(f / "flame_params.json", lambda d: d["frames"][2].pop("expression")),
     ("flame_params.json", "frames[2]", "expression")),
    (lambda f: _edit(f / "flame_params.json", lambda d: d["frames"][1].update(pose=[0] * 9)),
     ("flame_params.json", "pose")),
    (lambda f: _edit(f / "flame_params.json", lambda d: d.pop("frames")), ("flame_params.json", "'frames'")),
    (lambda f: (f / "image" / "3.png").unlink(), ("3.png",)),
])
def test_malformed_imavatar_names_the_file(tmp_path, damage, names):
    folder = make_imavatar(tmp_path)
    damage(folder)
    with pytest.raises(InputError) as error:
        read_video(folder)
    for part in names:
        assert part in str(error.value)


def make_nerface(root: Path) -> Path:
    """transforms_{train,val,test}.json with ./<split>/f_XXXX entries (.png appended), bg/00050.png."""
    rng = np.random.default_rng(2)
    layout = {"train": [0, 1, 2], "val": [3], "test": [4, 5]}
    (root / "bg").mkdir(parents=True)
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(root / "bg" / "00050.png")
    for split, ids in layout.items():
        (root / split).mkdir()
        frames = []
        for i in ids:
            Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / split / f"f_{i:04d}.png")
            frames.append({"file_path": f"./{split}/f_{i:04d}", "transform_matrix": np.eye(4).tolist(),
                           "expression": [0.01 * i] * 76, "bbox": [0, 1, 0, 1]})
        data = {"camera_angle_x": 0.5, "intrinsics": [10.0, 10.0, 0.5, 0.5], "frames": frames}
        (root / f"transforms_{split}.json").write_text(json.dumps(data))
    return root


def test_nerface_sequence(tmp_path):
    root = make_nerface(tmp_path / "person")
    dataset = open_dataset(root)
    assert dataset.kind == "nerface"
    seq = dataset.sequences[0]
    assert seq.frame_ids == [0, 1, 2, 3, 4, 5]
    assert seq.splits == {"train": [0, 1, 2], "val": [3], "test": [4, 5]}
    assert seq.annotations["expression"].shape == (6, 76)
    assert seq.mask is None and seq.extras["background"].name == "00050.png"
    expected = np.asarray(Image.open(root / "test" / "f_0005.png"))
    np.testing.assert_array_equal(seq.frames.read([5]).rgb[0], expected)


@pytest.mark.parametrize("damage, names", [
    (lambda r: _edit(r / "transforms_test.json", lambda d: d["frames"][1].pop("expression")),
     ("transforms_test.json", "frames[1]", "expression")),
    (lambda r: (r / "transforms_train.json").unlink(), ("transforms_train.json",)),
    (lambda r: (r / "test" / "f_0004.png").unlink(), ("f_0004.png",)),
])
def test_malformed_nerface_names_the_file(tmp_path, damage, names):
    root = make_nerface(tmp_path / "person")
    damage(root)
    with pytest.raises(InputError) as error:
        read_nerface(root)
    for part in names:
        assert part in str(error.value)


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
