"""Frame sources: ordering, compositing, video, masks, alignment policies and bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

import benchmark.io as fio
from benchmark.align import align
from benchmark.io import (
    ArrayFrames,
    FileFrames,
    ImageFolder,
    MaskFolder,
    open_frames,
    open_masks,
    write_frames,
)
from metrics.errors import InputError


def _frames(count=4, size=(24, 32), seed=0, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (count, *size, channels), dtype=np.uint8)


@pytest.mark.parametrize("names", [["1.png", "2.png", "10.png", "3.png"], ["00000.png", "00002.png", "00010.png", "00001.png"],
                                   ["frame_1.jpg", "frame_10.jpg", "frame_2.jpg", "frame_3.jpg"]])
def test_folder_frames_ordered_by_number(tmp_path, names):
    frames = np.stack([np.full((24, 32, 3), 30 * (i + 1), np.uint8) for i in range(len(names))])  # one flat colour each
    for name, frame in zip(names, frames):
        Image.fromarray(frame).save(tmp_path / name, quality=100)
    source = open_frames(tmp_path)
    expected_ids = sorted(int("".join(c for c in n.split(".")[0] if c.isdigit())) for n in names)
    assert source.frame_ids == expected_ids
    by_id = {int("".join(c for c in n.split(".")[0] if c.isdigit())): f for n, f in zip(names, frames)}
    read = source.read([expected_ids[-1], expected_ids[0]])
    assert np.abs(read.rgb[0].astype(int) - by_id[expected_ids[-1]]).max() <= 2
    assert np.abs(read.rgb[1].astype(int) - by_id[expected_ids[0]]).max() <= 2


def test_rgba_composited_on_background_with_alpha_as_matte(tmp_path):
    rgba = _frames(2, channels=4)
    rgba[0, ..., 3] = 0
    rgba[1, ..., 3] = 128
    write_frames(tmp_path, rgba)
    white = ImageFolder(tmp_path).read([0, 1])
    assert (white.rgb[0] == 255).all()
    expected = np.rint(rgba[1, ..., :3] * (128 / 255) + 255 * (1 - 128 / 255)).astype(np.uint8)
    np.testing.assert_array_equal(white.rgb[1], expected)
    np.testing.assert_allclose(white.alpha[1], 128 / 255)
    black = ImageFolder(tmp_path, background=(0, 0, 0)).read([0])
    assert (black.rgb == 0).all()
    array = ArrayFrames(rgba, background=(10, 20, 30)).read([0])
    assert (array.rgb[0] == [10, 20, 30]).all()
    # the colour as stored is kept beside the composite, for protocols that composite in float
    np.testing.assert_array_equal(white.colour, rgba[..., :3])
    np.testing.assert_array_equal(array.colour, rgba[:1, ..., :3])
    opaque = ImageFolder(write_frames(tmp_path / "rgb", rgba[..., :3])[0].parent).read([0])
    assert opaque.colour is None and opaque.alpha is None and opaque.stored is opaque.rgb


def test_frames_with_a_matte_file_beside_them(tmp_path):
    colour = _frames(2)
    mattes = np.stack([np.full(colour.shape[1:3], 0, np.uint8), np.full(colour.shape[1:3], 128, np.uint8)])
    frames = {i: path for i, path in enumerate(write_frames(tmp_path / "image", colour))}
    matte_files = {i: path for i, path in enumerate(write_frames(tmp_path / "mask", np.repeat(mattes[..., None], 3, -1)))}
    read = FileFrames(frames, name="image", mattes=matte_files).read([0, 1])
    as_rgba = ArrayFrames(np.concatenate([colour, mattes[..., None]], axis=-1)).read([0, 1])
    np.testing.assert_array_equal(read.rgb, as_rgba.rgb)  # exactly as an alpha channel would be
    np.testing.assert_array_equal(read.alpha, as_rgba.alpha)
    np.testing.assert_array_equal(read.colour, colour)
    (tmp_path / "mask" / "00001.png").unlink()
    with pytest.raises(InputError, match="00001.png: matte file not found"):
        FileFrames(frames, name="image", mattes=matte_files)
    with pytest.raises(InputError, match="no matte listed for frame 1"):
        FileFrames(frames, name="image", mattes={0: matte_files[0]})


def test_mask_folder_and_mask_arrays(tmp_path):
    masks = np.zeros((2, 24, 32), np.uint8)
    masks[:, 5:10, 5:20] = 255
    write_frames(tmp_path, np.repeat(masks[..., None], 3, axis=-1))
    read = MaskFolder(tmp_path).read([1])
    assert read.alpha.shape == (1, 24, 32) and read.alpha.sum() == 5 * 15
    float_masks = open_masks(masks.astype(np.float32) / 255).read([0, 1])
    np.testing.assert_array_equal(float_masks.alpha, masks / 255)
    with pytest.raises(InputError, match="mask: expected an array"):
        open_masks(np.zeros((2, 3, 24, 32)))
    with pytest.raises(InputError, match="finite and in"):
        open_masks(np.full((1, 4, 4), np.nan))


def test_video_reading(tmp_path):
    frames = np.zeros((9, 48, 64, 3), np.uint8)
    for i in range(9):
        frames[i, :, :, :] = 20 * i  # flat colours survive the codec almost exactly
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for frame in frames:
        writer.write(frame)
    writer.release()
    video = open_frames(path)
    assert video.frame_ids == list(range(9)) and video.size == (48, 64) and video.fps == pytest.approx(25)
    batches = list(video.batches(4))
    assert [b.ids for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    for batch in batches:
        for frame_id, rgb in zip(batch.ids, batch.rgb):
            assert abs(rgb.mean() - 20 * frame_id) < 3
    out_of_order = video.read([7, 2])
    assert abs(out_of_order.rgb[0].mean() - 140) < 3 and abs(out_of_order.rgb[1].mean() - 40) < 3


def test_reading_is_lazy_and_batched(tmp_path, monkeypatch):
    write_frames(tmp_path, _frames(10))
    source = ImageFolder(tmp_path)
    opened = []
    original = fio.read_image
    monkeypatch.setattr(fio, "read_image", lambda path: opened.append(path.name) or original(path))
    batches = source.batches(3)
    first = next(batches)
    assert first.ids == [0, 1, 2] and opened == ["00000.png", "00001.png", "00002.png"]


def test_alignment_by_frame_id_and_policies():
    gt = ArrayFrames(_frames(5), frame_ids=[0, 1, 2, 3, 4], name="gt")
    pred = ArrayFrames(_frames(4, seed=1), frame_ids=[1, 2, 3, 7], name="pred")
    with pytest.raises(InputError, match=r"pred: missing frames 0, 4 and extra frames 7 against ground truth gt"):
        align(pred, gt)
    pair = align(pred, gt, "intersect")
    assert pair.frame_ids == [1, 2, 3]
    small = ArrayFrames(_frames(5, size=(12, 16)), name="small")
    with pytest.raises(InputError, match=r"small: frame size 16x12 differs from ground truth gt \(32x24\)"):
        align(small, gt)
    p, g = next(align(small, gt, "resize").batches(5))
    assert p.rgb.shape == g.rgb.shape == (5, 24, 32, 3)
    with pytest.raises(InputError, match="unknown policy"):
        align(pred, gt, "stretch")


def test_bad_inputs_name_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=f"{empty}: no images"):
        open_frames(empty)
    with pytest.raises(InputError, match="no such file or folder"):
        open_frames(tmp_path / "absent")
    folder = tmp_path / "frames"
    write_frames(folder, _frames(3))
    data = (folder / "00001.png").read_bytes()
    (folder / "00001.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="00001.png: unreadable or truncated"):
        ImageFolder(folder).read([0, 1])
    (folder / "00001.png").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="00001.png: unreadable"):
        ImageFolder(folder).read([1])
    Image.fromarray(_frames(1, size=(10, 10))[0]).save(folder / "00001.png")
    with pytest.raises(InputError, match="00001.png: size 10x10 differs"):
        ImageFolder(folder).read([1])
    dup = tmp_path / "dup"
    write_frames(dup, _frames(1))
    Image.fromarray(_frames(1)[0]).save(dup / "0.png")
    with pytest.raises(InputError, match="both have frame id 0"):
        ImageFolder(dup)
    (dup / "0.png").unlink()
    Image.fromarray(_frames(1)[0]).save(dup / "cover.png")
    with pytest.raises(InputError, match="cover.png: file name has no frame number"):
        ImageFolder(dup)
    with pytest.raises(InputError, match="expected dtype uint8"):
        ArrayFrames(np.zeros((2, 4, 4, 3), np.float32))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a folder of frames or a video"):
        open_frames(tmp_path / "notes.txt")
