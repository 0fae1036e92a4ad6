"""Face metrics: DECA encoder vs an independent functional forward, DECA crop vs scikit-image,
landmark pose under a known in-plane rotation, Procrustes vs SciPy, identity, faceless frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.evaluation import evaluate
from metrics import registry
from metrics.errors import InputError
from metrics.face import (
    DecaEncoder,
    deca_crop,
    deca_model,
    expression_distance,
    geodesic_degrees,
    head_rotation,
    roll_degrees,
)
from metrics.landmarks import detect_landmarks, similarity_align

FACE_CROP = (slice(20, 276), slice(92, 348))  # 256x256 around the astronaut's face


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[FACE_CROP])


@pytest.fixture(scope="module")
def face_landmarks(face) -> np.ndarray:
    landmarks = detect_landmarks(face)
    assert landmarks is not None and landmarks.shape == (68, 2)
    return landmarks


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# ---------------------------------------------------------------------------- DECA


def deca_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """E_flame in DECA's key layout (encoder.* of a ResNet-50 without fc, layers.0 / layers.2),
    random weights with non-trivial batch-norm statistics."""
    from torchvision.models import resnet50

    torch.manual_seed(seed)
    state = {}
    for key, value in resnet50(weights=None).state_dict().items():
        if key.startswith("fc."):
            continue
        if key.endswith("running_mean"):
            value = torch.randn_like(value) * 0.05
        elif key.endswith("running_var"):
            value = torch.rand_like(value) * 0.4 + 0.8
        state["encoder." + key] = value
    state["layers.0.weight"] = torch.randn(1024, 2048) * 0.02
    state["layers.0.bias"] = torch.randn(1024) * 0.02
    state["layers.2.weight"] = torch.randn(236, 1024) * 0.02
    state["layers.2.bias"] = torch.randn(236) * 0.02
    return state


def functional_deca(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """DECA's ResnetEncoder written out with torch.nn.functional from the state dict alone."""

    def bn(x, prefix):
        return F.batch_norm(x, state[prefix + ".running_mean"], state[prefix + ".running_var"],
                            state[prefix + ".weight"], state[prefix + ".bias"], training=False, eps=1e-5)

    p = "encoder."
    x = F.relu(bn(F.conv2d(x, state[p + "conv1.weight"], stride=2, padding=3), p + "bn1"))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    for layer, blocks in zip(range(1, 5), (3, 4, 6, 3)):
        for block in range(blocks):
            q = f"{p}layer{layer}.{block}."
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(bn(F.conv2d(x, state[q + "conv1.weight"]), q + "bn1"))
            out = F.relu(bn(F.conv2d(out, state[q + "conv2.weight"], stride=stride, padding=1), q + "bn2"))
            out = bn(F.conv2d(out, state[q + "conv3.weight"]), q + "bn3")
            if q + "downsample.0.weight" in state:
                x = bn(F.conv2d(x, state[q + "downsample.0.weight"], stride=stride), q + "downsample.1")
            x = F.relu(out + x)
    x = F.avg_pool2d(x, 7, stride=1).flatten(1)
    x = F.relu(F.linear(x, state["layers.0.weight"], state["layers.0.bias"]))
    return F.linear(x, state["layers.2.weight"], state["layers.2.bias"])


@pytest.fixture(scope="module")
def deca_checkpoint(tmp_path_factory):
    state = deca_state()
    path = tmp_path_factory.mktemp("deca") / "deca_model.tar"
    torch.save({"E_flame": state, "E_detail": {}, "D_detail": {}}, path)
    return path, state


def test_deca_encoder_matches_an_independent_forward(deca_checkpoint):
    path, state = deca_checkpoint
    encoder = DecaEncoder.from_checkpoint(path)
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    codes = encoder.encode(images)
    with torch.no_grad():
        expected = functional_deca(state, images)
    assert expected.std() > 1e-3
    sizes = {"shape": 100, "tex": 50, "exp": 50, "pose": 6, "cam": 3, "light": 27}
    start = 0
    for name, size in sizes.items():
        value = codes[name].reshape(2, -1)
        assert value.shape == (2, size), name
        torch.testing.assert_close(value, expected[:, start : start + size], rtol=1e-4, atol=1e-5)
        start += size
    assert codes["light"].shape == (2, 9, 3)
    with pytest.raises(InputError, match="224"):
        encoder.encode(torch.rand(1, 3, 128, 128))


def test_deca_checkpoint_is_loaded_strictly(tmp_path, deca_checkpoint):
    _, state = deca_checkpoint
    broken = dict(state)
    del broken["layers.2.bias"]
    broken["encoder.fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "deca_model.tar"
    torch.save({"E_flame": broken}, path)
    with pytest.raises(InputError) as error:
        DecaEncoder.from_checkpoint(path)
    assert "layers.2.bias" in str(error.value) and "encoder.fc.weight" in str(error.value)
    torch.save({"something": {}}, path)
    with pytest.raises(InputError, match="E_flame"):
        DecaEncoder.from_checkpoint(path)


def test_deca_crop_matches_scikit_image_warp(face, face_landmarks):
    from skimage.transform import estimate_transform, warp

    # DECA's TestData: box from the landmarks, mean side x1.1, crop side int(old_size * 1.25)
    left, top = face_landmarks.min(0)
    right, bottom = face_landmarks.max(0)
    old_size = (right - left + bottom - top) / 2 * 1.1
    center = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    size = int(old_size * 1.25)
    src = np.array([[center[0] - size / 2, center[1] - size / 2], [center[0] - size / 2, center[1] + size / 2],
                    [center[0] + size / 2, center[1] - size / 2]])
    tform = estimate_transform("similarity", src, np.array([[0, 0], [0, 223], [223, 0]]))
    expected = warp(face / 255.0, tform.inverse, output_shape=(224, 224))
    crop = deca_crop(face, face_landmarks)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.float32
    assert np.abs(crop - expected)[2:-2, 2:-2].max() < 2e-3


def test_deca_metrics_through_evaluate(face, deca_checkpoint, monkeypatch):
    path, _ = deca_checkpoint
    monkeypatch.setenv("CABENCH_WEIGHTS", str(path.parent))
    assert registry.get("deca_pe").unavailable_reason() is None
    pred, gt = rotate(face, 12)[None], face[None]
    encoder = deca_model(None, torch.device("cpu"))  # the model evaluate uses, checked above
    for face_region in ("gt", "detect"):
        result = evaluate(pred=pred, gt=gt, metrics=["deca_pe", "deca_ee"], progress=False, face_region=face_region).frames
        # by default both crops are DECA's box around the ground truth's landmarks (IMavatar crops by
        # ground-truth keypoints); with face_region="detect" each frame is cropped by its own landmarks
        pred_box = detect_landmarks(gt[0]) if face_region == "gt" else detect_landmarks(pred[0])
        crops = [deca_crop(pred[0], pred_box), deca_crop(gt[0], detect_landmarks(gt[0]))]
        codes = encoder.encode(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2))
        for column, code in (("deca_pe", "pose"), ("deca_ee", "exp")):
            expected = torch.linalg.vector_norm(codes[code][0] - codes[code][1]).item()
            assert expected > 0 and result[column].iloc[0] == pytest.approx(expected, rel=1e-4)


def test_deca_without_checkpoint_is_reported(torch_home, face):
    reason = registry.get("deca_ee").unavailable_reason()
    assert reason is not None and "deca_model.tar" in reason and "CABENCH_WEIGHTS" in reason
    result = evaluate(pred=face[None], gt=face[None], metrics=["deca_ee", "lmd"], progress=False)
    assert "deca_ee" in result.missing and "deca_ee" not in result.frames.columns


# ---------------------------------------------------------------------------- landmarks


def test_in_plane_rotation_changes_roll_by_that_angle(face, face_landmarks):
    # Measured on this 256x256 crop: |roll change + angle| <= 0.8 deg for angles -15..20 deg.
    size = face.shape[:2]
    reference = head_rotation(face_landmarks, size)
    for angle in (-15.0, 10.0):
        rotated = detect_landmarks(rotate(face, angle))
        rotation = head_rotation(rotated, size)
        # a counter-clockwise image rotation is a negative roll in camera axes (y down)
        assert roll_degrees(rotation) - roll_degrees(reference) == pytest.approx(-angle, abs=1.5)
        assert geodesic_degrees(rotation, reference) == pytest.approx(abs(angle), abs=1.5)


def test_landmark_metrics_through_evaluate(face):
    from skimage import data

    shifted = np.ascontiguousarray(data.astronaut()[20:276, 86:342])  # the face 6 px to the right
    cat = np.ascontiguousarray(cv2.resize(data.chelsea(), (256, 256)))
    gt = np.stack([face, face, face, face, cat])
    pred = np.stack([face, rotate(face, 10), shifted, cat, face])
    names = ["lmk_pose", "lmk_expr", "lmd", "mlmd", "csim"]
    iod = np.linalg.norm(detect_landmarks(face)[45] - detect_landmarks(face)[36])
    for face_region in ("gt", "detect"):
        result = evaluate(pred=pred, gt=gt, metrics=names, progress=False, batch_size=3, face_region=face_region).frames
        first, rotated, moved, faceless, no_truth = (result.iloc[i] for i in range(5))
        for name in ("lmk_pose", "lmk_expr", "lmd", "mlmd"):
            assert first[name] == pytest.approx(0, abs=1e-9), name
        assert first["csim"] == pytest.approx(1.0, abs=1e-9)
        assert rotated["lmk_pose"] == pytest.approx(10, abs=1.5)
        assert rotated["lmk_expr"] < 0.03  # a rotation leaves the expression after alignment
        assert rotated["lmd"] > 0.1
        assert moved["lmd"] == pytest.approx(6 / iod, abs=0.02) and moved["lmk_expr"] < 0.03
        assert moved["csim"] > 0.95 and rotated["csim"] > 0.9
        for name in names:
            assert np.isnan(no_truth[name]), name  # the ground truth has no face: NaN, counted, not fatal
        if face_region == "detect":
            for name in names:
                assert np.isnan(faceless[name]), name  # no face found in the method's frame: NaN
        else:
            # located from the ground truth's face box, a frame without the face gets values, and
            # scores worse than the kept (rotated) face on every metric
            assert faceless["lmk_pose"] > 3 * rotated["lmk_pose"] and faceless["lmd"] > rotated["lmd"]
            assert faceless["lmk_expr"] > rotated["lmk_expr"] and faceless["mlmd"] > rotated["mlmd"]
            assert faceless["csim"] < rotated["csim"] - 0.1


def test_similarity_alignment_matches_scipy_procrustes():
    from scipy.spatial import procrustes

    rng = np.random.default_rng(0)
    target = rng.uniform(0, 100, size=(51, 2))
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = 1.7 * target @ rotation.T + [5.0, -3.0] + rng.normal(0, 2.0, size=target.shape)
    aligned = similarity_align(source, target)
    _, _, disparity = procrustes(target, source)
    residual = ((aligned - target) ** 2).sum() / ((target - target.mean(0)) ** 2).sum()
    assert residual == pytest.approx(disparity, rel=1e-9)
    # exact similarity: zero expression distance
    landmarks = rng.uniform(0, 100, size=(68, 2))
    assert expression_distance(0.5 * landmarks @ rotation.T + 7, landmarks) < 1e-9


def test_dlib_models_are_found_in_their_package_and_listed():
    from metrics.weights import weight_status

    rows = {row["key"]: row for row in weight_status()}
    for key in ("dlib-landmarks68", "dlib-face-recognition"):
        assert rows[key]["found"].endswith(rows[key]["file"]) and "face_recognition_models" in rows[key]["found"]
    assert registry.get("csim").unavailable_reason() is None


def test_descriptor_network_in_torch_equals_dlibs_own(face, photos, tmp_path):
    import dlib

    from metrics.dlib_resnet import DlibResNet, read_dlib_resnet
    from metrics.landmarks import chip_descriptors, face_chip, model_path

    recognizer = dlib.face_recognition_model_v1(str(model_path("dlib_face_recognition")))
    _, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model_path("dlib_landmarks68")))
    images = [face, rotate(face, 15), cv2.GaussianBlur(face, (0, 0), 2.0), photos["astronaut"]]
    chips, expected = [], []
    for image in images:
        landmarks = detect_landmarks(image)
        chip = face_chip(image, landmarks)
        shape = predictor(image, dlib.rectangle(*(int(v) for v in (*landmarks.min(0), *landmarks.max(0)))))
        assert np.array_equal(chip, dlib.get_face_chip(image, dlib.full_object_detection(
            shape.rect, [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]), 150, 0.25))
        chips.append(chip)
        expected.append(np.array(recognizer.compute_face_descriptor(chip)))  # dlib's network on the same chip
    expected = np.stack(expected)
    descriptors = chip_descriptors(chips)
    assert np.abs(expected).max() > 0.2
    np.testing.assert_allclose(descriptors, expected, rtol=0, atol=2e-6)

    path = model_path("dlib_face_recognition")
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(InputError, match="truncated.dat.*ends early"):
        read_dlib_resnet(truncated)
    with pytest.raises(InputError, match="shape_predictor.*not dlib's face-recognition ResNet"):
        DlibResNet.from_file(model_path("dlib_landmarks68"))


# ---------------------------------------------------------------------------- face region


def pixelate(image: np.ndarray, block: int) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // block, height // block), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def noised(image: np.ndarray, std: float) -> np.ndarray:
    return np.clip(image + np.random.default_rng(0).normal(0, std, image.shape), 0, 255).astype(np.uint8)


DAMAGES = {  # light, medium, heavy
    "blur": (lambda image, sigma: cv2.GaussianBlur(image, (0, 0), sigma), (1, 4, 8)),
    "pixelate": (pixelate, (4, 8, 16)),
    "jpeg": (jpeg, (50, 8, 2)),
    "noise": (noised, (10, 30, 100)),
}
FACE_METRICS = ["lmk_pose", "lmk_expr", "lmd", "mlmd", "csim"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory, face) -> np.ndarray:
    """Real faces at 256x256: six frames of a synthetic talking head and two crops of the astronaut."""
    from skimage import data

    from benchmark.datasets import open_dataset
    from benchmark.datasets.synthetic import write_sequence

    root = tmp_path_factory.mktemp("faces")
    write_sequence(root, frames=6, size=256, seed=3, name="talk", progress=False)
    sequence = next(iter(open_dataset(root, kind="synthetic")))
    wide = cv2.resize(data.astronaut()[0:320, 60:380], (256, 256), interpolation=cv2.INTER_AREA)
    return np.concatenate([sequence.frames.read(sequence.frames.frame_ids).rgb, face[None], wide[None]])


@pytest.fixture(scope="module")
def faces_truth(tmp_path_factory) -> Path:
    """One truth cache for every scoring against ``faces``: their boxes, landmarks and descriptors found
    once (the numbers do not depend on the cache: tests/test_truth.py)."""
    return tmp_path_factory.mktemp("faces_truth")


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_faces_get_values_that_grow_with_the_damage(faces, faces_truth, damage):
    function, levels = DAMAGES[damage]
    means = {}
    for level in levels:
        pred = np.stack([function(image, level) for image in faces])
        result = evaluate(pred=pred, gt=faces, metrics=FACE_METRICS, progress=False, truth_cache=faces_truth).frames
        assert np.isfinite(result[FACE_METRICS].to_numpy()).all(), (damage, level)  # every frame has a value
        means[level] = result[FACE_METRICS].mean()
        if level == levels[-1]:
            # detected on the method's frame instead, the heavily damaged faces are mostly not found,
            # and the mean would cover only the frames that were: the selection the default avoids
            detected = evaluate(pred=pred, gt=faces, metrics=["lmd"], progress=False, face_region="detect",
                                truth_cache=faces_truth).frames
            assert detected["lmd"].notna().sum() <= len(faces) // 2
    for lighter, heavier in zip(levels, levels[1:]):
        for name in ("lmk_pose", "lmk_expr", "lmd", "mlmd"):
            assert means[heavier][name] > means[lighter][name], (damage, name, lighter, heavier)
        assert means[heavier]["csim"] < means[lighter]["csim"], (damage, lighter, heavier)


def test_threads_find_the_faces_one_thread_finds(faces):
    from concurrent.futures import ThreadPoolExecutor

    from metrics.landmarks import detect_face, landmarks_in_box

    # a dlib detector keeps the image it scans in itself: shared by two threads, it returned the
    # box of the other thread's frame on 1-2 of 16 frames
    frames = [np.ascontiguousarray(np.roll(image, shift, axis=(0, 1))) for shift in ((0, 0), (9, 5), (-7, 11))
              for image in faces]
    serial = [detect_face(image) for image in frames]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            for one, other in zip(serial, pool.map(detect_face, frames)):
                assert one[0] == other[0] and np.array_equal(one[1], other[1])
            placed = pool.map(lambda item: landmarks_in_box(*item), [(f, s[0]) for f, s in zip(frames, serial)])
            for one, other in zip(serial, placed):
                assert np.array_equal(one[1], other)
