"""Protocol behaviour beyond the numbers (those are checked against the published scripts in
test_calibration.py): refusals, the canonical compositing, ids and descriptions."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from benchmark import evaluate
from metrics.errors import CabenchError, InputError
from metrics.protocols import PROTOCOLS, get_protocol


@pytest.fixture(scope="module")
def pair(photos):
    gt = photos["astronaut"][20:120:, 150:250].copy()  # 100x100 face crop
    rng = np.random.default_rng(0)
    pred = np.clip(gt.astype(int) + rng.integers(-25, 26, gt.shape), 0, 255).astype(np.uint8)
    pred[40:44, 40:44] = 255  # a small bright speck that erode-dilate removes
    return pred[None], gt[None]


def test_protocols_refuse_what_their_script_cannot_do(pair):
    pred, gt = pair
    with pytest.raises(InputError, match="68 landmarks"):
        evaluate(pred, gt, metrics=("l2",), protocol="imavatar", progress=False)
    with pytest.raises(CabenchError, match="drop --mask"):
        evaluate(pred, gt, metrics=("l2",), protocol="pointavatar", mask=np.ones((1, 100, 100), np.float32), progress=False)
    result = evaluate(pred, gt, metrics=("psnr", "ssim"), protocol="insta", progress=False)
    assert "ssim" not in result.frames.columns and "no SSIM" in result.missing["ssim"]


def test_canonical_composites_rgba_in_float_on_white(pair):
    """Alpha 1 is the colour itself, alpha 0 is white, and between them the float blend: the
    canonical PSNR of an RGBA frame equals scikit-image's on the float composite (no uint8 step)."""
    pred, gt = pair
    alpha = np.linspace(0, 255, gt.shape[2]).round().astype(np.uint8)[None, None, :, None]
    alpha = np.broadcast_to(alpha, (*gt.shape[:3], 1))
    rgba = np.concatenate([gt, alpha], axis=-1)
    result = evaluate(pred, rgba, metrics=("psnr", "l2"), progress=False).frames.iloc[0]
    a = alpha[0].astype(np.float32) / np.float32(255)
    composite = gt[0].astype(np.float32) / np.float32(255) * a + (1 - a)
    assert result["psnr"] == pytest.approx(peak_signal_noise_ratio(composite, pred[0] / 255.0, data_range=1), abs=1e-4)
    uint8_composite = np.rint(composite * 255) / 255
    assert abs(result["l2"] - ((uint8_composite - pred[0] / 255.0) ** 2).mean()) > 1e-7  # not the uint8 composite
    opaque = np.concatenate([gt, np.full_like(gt[..., :1], 255)], axis=-1)
    assert evaluate(pred, opaque, metrics=("psnr",), progress=False).frames["psnr"].iloc[0] == pytest.approx(
        evaluate(pred, gt, metrics=("psnr",), progress=False).frames["psnr"].iloc[0], abs=1e-6)


def test_every_protocol_has_a_docstring_and_the_id_is_recorded(pair):
    pred, gt = pair
    for name, protocol in PROTOCOLS.items():
        assert protocol.description, name
    result = evaluate(pred, gt, metrics=("l2",), protocol="insta", progress=False)
    assert set(result.frames["protocol"]) == {"insta"} and result.protocol == "insta"
    with pytest.raises(CabenchError, match="unknown protocol 'foo'"):
        get_protocol("foo")
