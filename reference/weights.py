"""Weight files the reference pipeline can use (listed by `cabench weights`)."""

from __future__ import annotations

from metrics.weights import WeightFile, find_weight, register_weight

RESNET18 = register_weight(
    WeightFile(
        key="resnet18_imagenet",
        filename="resnet18-f37072fd.pth",
        used_by="reference pipeline: global image encoder E (sd15 config)",
        source="torchvision ResNet18_Weights.IMAGENET1K_V1 (put the file in $CABENCH_WEIGHTS or the torch hub cache)",
    )
)


def load_resnet18_imagenet(path=None) -> dict:
    """The torchvision ImageNet ResNet-18 state dict from a local file (never downloaded)."""
    import torch

    return torch.load(find_weight(RESNET18.key, path), map_location="cpu", weights_only=True)
