"""Optical flow: OpenCV backends recover known motions of a real photo; RAFT loading, padding, batching."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metrics.errors import InputError
from metrics.flow import (
    FlowConfig,
    build_raft,
    estimate_flow,
    flow_unavailable,
    load_raft,
    pad_to_multiple,
    raft_flow,
    warp,
)

SIZE = 160
MARGIN = 16  # pixels near the border see content that entered the frame; excluded from the EPE


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def moved(image: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo moved by the affine ``matrix`` and the true flow (2,H,W) from the photo to it."""
    height, width = image.shape[:2]
    out = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    x_new = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    y_new = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    return out, np.stack([x_new - xs, y_new - ys])


# Measured interior mean EPE on 160x160 astronaut (DIS / Farneback): translations <= 0.06 / 0.09 px,
# 3 deg rotation 0.15 / 0.30 px, -5 deg 0.25 / 0.51 px (mean true motion 3-7 px). Bounds below.
CASES = [
    ("translate 2.5,-1.5", np.float32([[1, 0, 2.5], [0, 1, -1.5]]), {"dis": 0.15, "farneback": 0.15}),
    ("translate 4,3", np.float32([[1, 0, 4.0], [0, 1, 3.0]]), {"dis": 0.15, "farneback": 0.15}),
    ("translate 0.5,0.25", np.float32([[1, 0, 0.5], [0, 1, 0.25]]), {"dis": 0.15, "farneback": 0.15}),
    ("rotate 3", cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 3, 1.0).astype(np.float32), {"dis": 0.3, "farneback": 0.6}),
    ("rotate -5", cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), -5, 1.0).astype(np.float32), {"dis": 0.4, "farneback": 0.8}),
]


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_opencv_flow_recovers_known_motion(photo, backend):
    sources, targets, truths = [], [], []
    for _, matrix, _ in CASES:
        target, truth = moved(photo, matrix)
        sources.append(to_tensor(photo))
        targets.append(to_tensor(target))
        truths.append(truth)
    flows = estimate_flow(torch.cat(sources), torch.cat(targets), backend).numpy()
    assert flows.shape == (len(CASES), 2, SIZE, SIZE) and flows.dtype == np.float32
    for (name, _, bounds), flow, truth in zip(CASES, flows, truths):
        epe = np.linalg.norm(flow - truth, axis=0)[MARGIN:-MARGIN, MARGIN:-MARGIN].mean()
        assert epe < bounds[backend], f"{backend} {name}: EPE {epe:.3f}"


def test_still_pair_has_zero_flow_and_odd_sizes_work(photo):
    frame = to_tensor(photo[:101, :77])
    dis = estimate_flow(frame, frame, "dis")
    assert dis.shape == (1, 2, 101, 77) and dis.abs().max() < 1e-3
    # Farneback's polynomial expansion leaves up to ~0.5 px at a few border pixels (measured).
    farneback = estimate_flow(frame, frame, "farneback")
    assert farneback.shape == (1, 2, 101, 77) and farneback.abs().mean() < 0.01


def test_warp_follows_the_flow_convention(photo):
    source, truth = moved(photo, np.float32([[1, 0, 3.0], [0, 1, -2.0]]))
    # frame t = photo, frame t+1 = moved photo; warping t+1 back by the flow t->t+1 gives t.
    back = warp(to_tensor(source), torch.from_numpy(truth)[None].float())
    inner = slice(MARGIN, -MARGIN)
    assert (back - to_tensor(photo))[..., inner, inner].abs().mean() < 0.01


def test_unknown_backend_is_an_input_error(photo):
    with pytest.raises(InputError, match="unknown backend"):
        estimate_flow(to_tensor(photo), to_tensor(photo), "lucas")
    with pytest.raises(InputError, match="unknown backend 'lucas'"):
        flow_unavailable({"flow": "lucas"})


# ---------------------------------------------------------------------------- RAFT


def original_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision raft_large state dict written as princeton-vl/RAFT's DataParallel checkpoint.

    Written key by key from RAFT's module names (core/extractor.py, core/update.py): the last norm
    of a strided residual block is also ``downsample.1``, so it appears twice.
    """
    out = {}
    for key, value in state.items():
        name = key.replace("feature_encoder.", "fnet.").replace("context_encoder.", "cnet.")
        name = name.replace(".convnormrelu.0.", ".conv1.").replace(".convnormrelu.1.", ".norm1.")
        if name.startswith(("fnet.conv.", "cnet.conv.")):
            name = name.replace(".conv.", ".conv2.", 1)
        for i in (1, 2):
            name = name.replace(f".convnormrelu{i}.0.", f".conv{i}.").replace(f".convnormrelu{i}.1.", f".norm{i}.")
        if ".downsample.1." in name:
            out["module." + name.replace(".downsample.1.", ".norm3.")] = value
        name = name.replace("update_block.motion_encoder.convcorr1.0.", "update_block.encoder.convc1.")
        name = name.replace("update_block.motion_encoder.convcorr2.0.", "update_block.encoder.convc2.")
        name = name.replace("update_block.motion_encoder.convflow1.0.", "update_block.encoder.convf1.")
        name = name.replace("update_block.motion_encoder.convflow2.0.", "update_block.encoder.convf2.")
        name = name.replace("update_block.motion_encoder.conv.0.", "update_block.encoder.conv.")
        for gate in "zrq":
            for i in (1, 2):
                name = name.replace(f"recurrent_block.convgru{i}.conv{gate}.", f"gru.conv{gate}{i}.")
        name = name.replace("mask_predictor.convrelu.0.", "update_block.mask.0.")
        name = name.replace("mask_predictor.conv.", "update_block.mask.2.")
        out["module." + name] = value
    return out


def frames_pair(photo: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    first = to_tensor(photo[: size[0], : size[1]])
    second = to_tensor(np.roll(photo, (1, 2), axis=(0, 1))[: size[0], : size[1]])
    return first, second


@pytest.fixture(scope="module")
def raft_large_reference():
    torch.manual_seed(0)
    return build_raft("raft_large").eval()


def test_original_raft_checkpoint_is_converted(tmp_path, photo, raft_large_reference):
    original = original_layout(raft_large_reference.state_dict())
    assert any(".norm3." in k for k in original) and all(k.startswith("module.") for k in original)
    path = tmp_path / "raft-things.pth"
    torch.save(original, path)
    loaded = load_raft(path, "raft_large")
    for key, value in raft_large_reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    first, second = frames_pair(photo, (128, 136))
    with torch.no_grad():
        expected = raft_large_reference(first * 2 - 1, second * 2 - 1, num_flow_updates=2)[-1]
    assert torch.allclose(raft_flow(loaded, first, second, 2), expected, atol=1e-5)


def test_mismatched_checkpoint_names_the_keys(tmp_path, raft_large_reference):
    state = original_layout(raft_large_reference.state_dict())
    del state["module.update_block.flow_head.conv2.weight"]
    state["module.update_block.extra.weight"] = torch.zeros(1)
    path = tmp_path / "raft-sintel.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as error:
        load_raft(path, "raft_large")
    message = str(error.value)
    assert "update_block.flow_head.conv2.weight" in message and "update_block.extra.weight" in message
    assert "raft-sintel.pth" in message


@pytest.fixture
def raft_small_in_hub(torch_home):
    torch.manual_seed(1)
    model = build_raft("raft_small").eval()
    torch.save(model.state_dict(), torch_home / "hub" / "checkpoints" / "raft_small_C_T_V2-01064c6d.pth")
    return model


def test_pad_to_multiple_of_8_splits_evenly():
    padded, pads = pad_to_multiple(torch.zeros(1, 3, 130, 141), 8, 128)
    assert padded.shape[-2:] == (136, 144) and pads == (1, 2, 3, 3)


def test_raft_from_hub_cache_pads_and_batches(photo, raft_small_in_hub):
    assert flow_unavailable({"flow": "raft_small"}) is None
    config = FlowConfig("raft_small", num_flow_updates=2)
    first, second = frames_pair(photo, (70, 90))  # not multiples of 8
    batch_a = torch.cat([first, second, first])
    batch_b = torch.cat([second, first, first])
    flows = estimate_flow(batch_a, batch_b, config)
    assert flows.shape == (3, 2, 70, 90) and torch.isfinite(flows).all()
    one_by_one = torch.cat([estimate_flow(a[None], b[None], config) for a, b in zip(batch_a, batch_b)])
    assert torch.allclose(flows, one_by_one, atol=1e-4)
    # padding to torchvision's minimum 128: 70 -> 128 (29 rows each side), 90 -> 128 (19 columns)
    padded_a = F.pad(batch_a * 2 - 1, (19, 19, 29, 29), mode="replicate")
    padded_b = F.pad(batch_b * 2 - 1, (19, 19, 29, 29), mode="replicate")
    with torch.no_grad():
        expected = raft_small_in_hub(padded_a, padded_b, num_flow_updates=2)[-1][..., 29:-29, 19:-19]
    assert torch.allclose(flows, expected, atol=1e-4)


def test_raft_without_weights_is_reported(torch_home):
    reason = flow_unavailable({"flow": "raft"})
    assert reason is not None and "raft_large_C_T_SKHT_V2-ff5fadd5.pth" in reason and "CABENCH_WEIGHTS" in reason
