"""Metric options per metric: ``[run.options.<metric>]`` tables beside the flat ``[run.options]``
shorthand, split once; two metrics of one run can take different values of the same option."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

import metrics
from benchmark.config import load_config
from benchmark.evaluation import split_options
from benchmark.runner import run_config
from metrics.errors import CabenchError
from tests.run_helpers import write_videos


@pytest.fixture
def vgg_in_hub(torch_home):
    """The ``features.*`` of a random-init torchvision VGG-16 (all LPIPS reads of it), where torchvision looks."""
    import torchvision

    torch.manual_seed(1)
    features = torchvision.models.vgg16(weights=None).features.state_dict()
    path = torch_home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    torch.save({f"features.{key}": value for key, value in features.items()}, path)
    return path


def test_tables_are_per_metric_and_win_over_the_shorthand():
    split = split_options(["lpips", "tlp", "tof"], {"net": "vgg", "tlp": {"net": "alex"}, "tof": {"crop": "none"}})
    assert split == {"lpips": {"net": "vgg"}, "tlp": {"net": "alex"}, "tof": {"crop": "none"}}
    assert split_options(["lpips", "tlp"], {"lpips": {}, "tlp": {"net": "vgg"}}) == {"lpips": {}, "tlp": {"net": "vgg"}}
    with pytest.raises(CabenchError, match="options of lpips: crop is not an option of lpips"):
        split_options(["lpips"], {"lpips": {"crop": "none"}})
    with pytest.raises(CabenchError, match="options of tlp: tlp is not one of the metrics lpips"):
        split_options(["lpips"], {"tlp": {"net": "alex"}})
    with pytest.raises(CabenchError, match=r"options of lpips: expected a table"):
        split_options(["lpips"], {"lpips": "vgg"})


def _frames(folder) -> torch.Tensor:
    import cv2

    files = sorted(folder.glob("*.png"))
    return torch.stack([torch.from_numpy(cv2.imread(str(f))[..., ::-1].copy()) for f in files]).permute(0, 3, 1, 2) / 255


def test_lpips_with_vgg_and_tlp_with_alex_in_one_run(tmp_path, alexnet_in_hub, vgg_in_hub):
    videos = write_videos(tmp_path / "v", frames=5, size=64)
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""
        [run]
        out = "out"
        metrics = ["lpips", "tlp"]
        split = "all"
        [run.options.lpips]
        net = "vgg"
        [run.options.tlp]
        net = "alex"
        [[datasets]]
        name = "synthetic"
        path = "{videos['root'] / 'gt' / 'seq'}"
        kind = "frames"
        [[methods]]
        name = "noisy"
        frames = "{videos['root'] / 'noisy' / '{sequence}'}"
        """))
    loaded = load_config(config)
    assert loaded.options == {"lpips": {"net": "vgg"}, "tlp": {"net": "alex"}}
    table = run_config(loaded, progress=False, log=lambda _: None).per_frame
    pred, gt = _frames(videos["root"] / "noisy" / "seq"), _frames(videos["root"] / "gt" / "seq")
    vgg, alex = (metrics.lpips(pred, gt, net=net).double().numpy() for net in ("vgg", "alex"))
    np.testing.assert_allclose(table["lpips"].to_numpy(), vgg, rtol=1e-6)
    assert np.abs(vgg - alex).min() > 1e-4  # the two trunks give other numbers: the test tells them apart
    pairs = [(metrics.lpips(gt[:-1], gt[1:], net=net), metrics.lpips(pred[:-1], pred[1:], net=net)) for net in ("alex", "vgg")]
    tlp_alex, tlp_vgg = ((100 * (a - b).abs()).double().numpy() for a, b in pairs)
    np.testing.assert_allclose(table["tlp"].to_numpy()[1:], tlp_alex, rtol=1e-5, atol=1e-6)
    assert np.isnan(table["tlp"].to_numpy()[0]) and np.abs(tlp_alex - tlp_vgg).max() > 1e-3
    part = json.loads(next((tmp_path / "out" / "parts").rglob("lpips.json")).read_text())
    assert '"net": "vgg"' in json.dumps(part)
    saved = load_config(tmp_path / "out" / "config.toml")  # the saved config keeps the tables
    assert saved.options == loaded.options
