"""Weight files the reference pipeline can use (listed by `cabench weights`; manifest entries)."""

from __future__ import annotations

from metrics.weights import find_weight, from_manifest

RESNET18 = from_manifest("resnet18-imagenet")


def load_resnet18_imagenet(path=None) -> dict:
    """The torchvision ImageNet ResNet-18 state dict from a local file (never downloaded)."""
    import torch

    return torch.load(find_weight(RESNET18.key, path), map_location="cpu", weights_only=True)
