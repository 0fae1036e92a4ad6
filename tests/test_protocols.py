"""Each compatibility protocol against an independent restatement of the original script's formula."""

from __future__ import annotations

import cv2
import lpips as lpips_package
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

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


def _f(x):
    return x.astype(np.float64) / 255


def _skimage_gauss_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
                                 channel_axis=-1)


def test_imavatar_protocol_restated(pair):
    pred, gt = pair
    landmarks = np.array([[30 + 40 * np.cos(t), 50 + 35 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 68, endpoint=False)])
    result = evaluate(pred=pred, gt=gt, metrics=("l1", "l2", "psnr", "ssim"), protocol="imavatar",
                      annotations={"landmarks": landmarks[None]}, progress=False).frames.iloc[0]
    # restatement of calculate_metrics.py: 256 px, hull of the keypoints, masked MSE / MAE, eps PSNR
    p = _f(cv2.resize(pred[0], (256, 256)))
    g = _f(cv2.resize(gt[0], (256, 256)))
    hull = cv2.convexHull((landmarks * 256 / 100).astype(np.int32))
    mask = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(mask, [hull], 1)
    m = mask[..., None].astype(np.float64)
    mse = (m * (p - g) ** 2).sum() / (m.sum() * 3)
    mae = (m * np.abs(p - g)).sum() / (m.sum() * 3)
    assert result["l2"] == pytest.approx(mse, abs=1e-6)
    assert result["l1"] == pytest.approx(mae, abs=1e-6)
    assert result["psnr"] == pytest.approx(20 * np.log10(1 / (np.sqrt(mse) + 1e-8)), abs=1e-4)
    assert result["ssim"] == pytest.approx(_skimage_gauss_ssim(p * m, g * m), abs=1e-5)
    with pytest.raises(InputError, match="68 landmarks"):
        evaluate(pred=pred, gt=gt, metrics=("l2",), protocol="imavatar", progress=False)


def test_pointavatar_protocol_restated(pair):
    pred, gt = pair
    result = evaluate(pred=pred, gt=gt, metrics=("l2", "psnr", "ssim"), protocol="pointavatar", progress=False).frames.iloc[0]
    kernel = np.ones((3, 3), np.uint8)
    p = _f(cv2.dilate(cv2.erode(cv2.resize(pred[0], (512, 512)), kernel), kernel))
    g = _f(cv2.resize(gt[0], (512, 512)))
    mse = ((p - g) ** 2).mean()
    assert result["l2"] == pytest.approx(mse, abs=1e-6)
    assert result["psnr"] == pytest.approx(20 * np.log10(1 / (np.sqrt(mse) + 1e-8)), abs=1e-4)
    assert result["ssim"] == pytest.approx(_skimage_gauss_ssim(p, g), abs=1e-5)
    with pytest.raises(CabenchError, match="drop --mask"):
        evaluate(pred=pred, gt=gt, metrics=("l2",), protocol="pointavatar", mask=np.ones((1, 100, 100), np.float32), progress=False)


def test_insta_protocol_restated_and_has_no_ssim(pair):
    pred, gt = pair
    result = evaluate(pred=pred, gt=gt, metrics=("psnr", "ssim"), protocol="insta", progress=False)
    assert result.frames["psnr"].iloc[0] == pytest.approx(-10 * np.log10(((_f(pred) - _f(gt)) ** 2).mean()), abs=1e-4)
    assert "ssim" not in result.frames.columns and "no SSIM" in result.missing["ssim"]


def test_nerface_protocol_restated(pair, alexnet_in_hub):
    pred, gt = pair
    result = evaluate(pred=pred, gt=gt, metrics=("l1", "psnr", "ssim", "lpips"), protocol="nerface", progress=False).frames.iloc[0]
    p, g = _f(pred[0]), _f(gt[0])
    assert result["l1"] == pytest.approx(np.abs(g - p).mean(), abs=1e-6)
    assert result["psnr"] == pytest.approx(peak_signal_noise_ratio(g, p, data_range=1), abs=1e-4)
    # old compare_ssim(multichannel=True) defaults: 7x7 uniform window, sample covariance, range 2
    assert result["ssim"] == pytest.approx(structural_similarity(g, p, win_size=7, data_range=2, channel_axis=-1), abs=1e-5)
    to_t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float()  # noqa: E731
    with torch.no_grad():
        wrong_range = lpips_package.LPIPS(net="alex", verbose=False).eval()(to_t(p), to_t(g)).item()
    assert result["lpips"] == pytest.approx(wrong_range, abs=1e-5)


def test_nha_protocol_restated(photos):
    gt = photos["coffee"][50:226, 100:276][None]  # 176 px: MS-SSIM needs more than 160
    pred = np.clip(gt.astype(int) + 12, 0, 255).astype(np.uint8)
    result = evaluate(pred=pred, gt=gt, metrics=("l1", "l2", "psnr", "ssim"), protocol="nha", progress=False).frames.iloc[0]
    p, g = 2 * _f(pred[0]) - 1, 2 * _f(gt[0]) - 1
    mse = ((p - g) ** 2).mean()
    assert result["l2"] == pytest.approx(mse, abs=1e-6)
    assert result["l1"] == pytest.approx(np.abs(p - g).mean(), abs=1e-6)
    assert result["psnr"] == pytest.approx(20 * np.log10(2 / np.sqrt(mse)), abs=1e-4)
    assert 0.5 < result["ssim"] <= 1.0


def test_every_protocol_has_a_docstring_and_the_id_is_recorded(pair):
    pred, gt = pair
    for name, protocol in PROTOCOLS.items():
        assert protocol.description, name
    result = evaluate(pred=pred, gt=gt, metrics=("l2",), protocol="insta", progress=False)
    assert set(result.frames["protocol"]) == {"insta"} and result.protocol == "insta"
    with pytest.raises(CabenchError, match="unknown protocol 'foo'"):
        get_protocol("foo")
