"""Shared fixtures: real photos from scikit-image, degradations, and test-made weight files."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real RGB photos (uint8) shipped with scikit-image."""
    from skimage import data

    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache in tmp_path (TORCH_HOME), with CABENCH_WEIGHTS unset."""
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("CABENCH_WEIGHTS", raising=False)
    return home


@pytest.fixture
def alexnet_in_hub(torch_home):
    """A random-init torchvision AlexNet state dict saved where torchvision's own loader looks."""
    import torchvision

    torch.manual_seed(0)
    path = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path
