"""LPIPS against the `lpips` package loading the same trunk weights through torchvision's own loader."""

from __future__ import annotations

import lpips as lpips_package
import numpy as np
import pytest
import torch

import metrics
from benchmark import evaluate
from metrics.errors import WeightsMissingError


def _frames(photos, size=64, count=3, seed=0):
    rng = np.random.default_rng(seed)
    photo = photos["astronaut"]
    gt = np.stack([photo[40 * i : 40 * i + size, 60 * i : 60 * i + size] for i in range(count)]).astype(np.float32) / 255
    pred = np.clip(gt + rng.normal(0, 0.08, gt.shape), 0, 1).astype(np.float32)
    to_t = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return to_t(pred), to_t(gt)


def _reference_model():
    # pnet_rand=False: the package asks torchvision for the ImageNet AlexNet, which torchvision finds
    # in $TORCH_HOME/hub/checkpoints (written by the fixture), so no download and no code of ours.
    return lpips_package.LPIPS(net="alex", version="0.1", verbose=False).eval()


def test_lpips_matches_package_with_hub_cache_lookup(photos, alexnet_in_hub):
    pred, gt = _frames(photos)
    ours = metrics.lpips(pred, gt)
    with torch.no_grad():
        reference = _reference_model()(pred, gt, normalize=True).flatten()
    assert ours.shape == (3,)
    assert torch.max(torch.abs(ours - reference)).item() <= 1e-5
    assert (ours > 0).all()


def test_lpips_without_normalize_matches_package(photos, alexnet_in_hub):
    pred, gt = _frames(photos, seed=3)
    with torch.no_grad():
        reference = _reference_model()(pred, gt).flatten()
    assert torch.max(torch.abs(metrics.lpips(pred, gt, normalize=False) - reference)).item() <= 1e-5


def test_masked_lpips_is_the_masked_mean_of_the_spatial_map(photos, alexnet_in_hub):
    pred, gt = _frames(photos, seed=5)
    mask = torch.zeros(3, 1, 64, 64)
    mask[:, :, 10:50, 5:40] = 1
    spatial = lpips_package.LPIPS(net="alex", version="0.1", spatial=True, verbose=False).eval()
    with torch.no_grad():
        distance_map = spatial(pred, gt, normalize=True)
    reference = (distance_map * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)
    assert torch.max(torch.abs(metrics.lpips(pred, gt, mask=mask) - reference)).item() <= 1e-5


def test_lpips_weights_from_cabench_weights_folder_and_explicit_path(photos, alexnet_in_hub, tmp_path, monkeypatch):
    pred, gt = _frames(photos)
    expected = metrics.lpips(pred, gt)
    folder = tmp_path / "weights"
    folder.mkdir()
    moved = folder / alexnet_in_hub.name
    alexnet_in_hub.rename(moved)
    with pytest.raises(WeightsMissingError, match="alexnet-owt-7be5be79.pth"):
        metrics.lpips(pred, gt)
    monkeypatch.setenv("CABENCH_WEIGHTS", str(folder))
    torch.testing.assert_close(metrics.lpips(pred, gt), expected)
    monkeypatch.delenv("CABENCH_WEIGHTS")
    torch.testing.assert_close(metrics.lpips(pred, gt, backbone_weights=moved), expected)
    with pytest.raises(WeightsMissingError, match="does not exist"):
        metrics.lpips(pred, gt, backbone_weights=tmp_path / "nope.pth")


def test_missing_trunk_is_reported_missing_and_other_metrics_still_come_out(photos, torch_home):
    pred, gt = _frames(photos)
    to_uint8 = lambda t: (t.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    result = evaluate(pred=to_uint8(pred), gt=to_uint8(gt), metrics=("psnr", "lpips"), progress=False)
    assert "lpips" not in result.frames.columns and "psnr" in result.frames.columns
    assert "alexnet-owt-7be5be79.pth" in result.missing["lpips"]
    assert str(torch_home / "hub" / "checkpoints") in result.missing["lpips"]
