"""Face metrics: DECA encoder vs an independent functional forward, DECA crop vs scikit-image,
landmark pose under a known in-plane rotation, Procrustes vs SciPy, identity, faceless frames."""

from __future__ import annotations

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
    result = evaluate(pred=pred, gt=gt, metrics=["deca_pe", "deca_ee"], progress=False).frames
    encoder = deca_model(None, torch.device("cpu"))  # the model evaluate used, checked above
    crops = [deca_crop(image, detect_landmarks(image)) for image in (pred[0], gt[0])]
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
    gt = np.stack([face, face, face, face])
    pred = np.stack([face, rotate(face, 10), shifted, cat])
    names = ["lmk_pose", "lmk_expr", "lmd", "mlmd", "csim"]
    result = evaluate(pred=pred, gt=gt, metrics=names, progress=False, batch_size=3).frames
    first, rotated, moved, faceless = (result.iloc[i] for i in range(4))
    for name in ("lmk_pose", "lmk_expr", "lmd", "mlmd"):
        assert first[name] == pytest.approx(0, abs=1e-9), name
    assert first["csim"] == pytest.approx(1.0, abs=1e-9)
    assert rotated["lmk_pose"] == pytest.approx(10, abs=1.5)
    assert rotated["lmk_expr"] < 0.03  # a rotation leaves the expression after alignment
    assert rotated["lmd"] > 0.1
    iod = np.linalg.norm(detect_landmarks(face)[45] - detect_landmarks(face)[36])
    assert moved["lmd"] == pytest.approx(6 / iod, abs=0.02) and moved["lmk_expr"] < 0.03
    assert moved["csim"] > 0.95 and rotated["csim"] > 0.9
    for name in names:
        assert np.isnan(faceless[name]), name  # no face: NaN, counted, not fatal


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
    for key in ("dlib_landmarks68", "dlib_face_recognition"):
        assert rows[key]["found"].endswith(rows[key]["file"]) and "face_recognition_models" in rows[key]["found"]
    assert registry.get("csim").unavailable_reason() is None
