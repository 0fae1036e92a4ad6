"""The trainable parts of ConsistentAvatar built from diffusers / torchvision parts.

* :class:`DecoupledUNet2DConditionModel`: a diffusers UNet whose cross-attention layers carry the
  decoupled condition branch (reference/attention.py); TSDM and FCSD each use one.
* :class:`GlobalImageEncoder`: the paper's global encoder E, image -> ``condition_dim`` vector.
  ``"resnet18"`` is a torchvision ResNet-18 (ImageNet weights from a local file when a full-size
  model is built, the encoder DiffusionRig uses) with its classifier replaced by a linear layer;
  ``"tiny"`` is a three-layer CNN for CPU tests.
* :class:`ConditionEncoder`: f = [E(TSD), Linear(pose 6), Linear(expression 100), Linear(emotion)]
  as tokens (N, 3 or 4, ``condition_dim``); the emotion token exists when ``emotion_dim > 0``.
"""

from __future__ import annotations

import inspect

import torch
from diffusers import ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from reference.attention import decoupled_processors


class DecoupledUNet2DConditionModel(UNet2DConditionModel):
    """UNet2DConditionModel + decoupled cross-attention on ``condition_tokens`` (IP-Adapter style)."""

    def __init__(self, condition_dim: int = 256, **unet_kwargs):
        super().__init__(**unet_kwargs)  # registers the UNet's own config
        self.register_to_config(condition_dim=condition_dim)
        self.set_attn_processor(decoupled_processors(self, condition_dim))

    @staticmethod
    def _get_init_keys(input_class):
        # the config holds every UNet2DConditionModel argument plus condition_dim
        keys = set(inspect.signature(input_class.__init__).parameters)
        if issubclass(input_class, DecoupledUNet2DConditionModel):
            keys |= set(inspect.signature(UNet2DConditionModel.__init__).parameters)
        return keys

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, condition_dim: int) -> DecoupledUNet2DConditionModel:
        """Copy a (pretrained) UNet's weights; only the new condition projections start fresh."""
        config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
        model = cls(condition_dim=condition_dim, **config)
        missing, unexpected = model.load_state_dict(unet.state_dict(), strict=False)
        if unexpected or any("to_k_c" not in k and "to_v_c" not in k for k in missing):
            raise RuntimeError(f"UNet weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        if unet.dtype != model.dtype:
            model = model.to(dtype=unet.dtype)
        return model.to(unet.device)


class GlobalImageEncoder(nn.Module):
    """E: an image in [0,1] (N,3,H,W) -> (N, out_dim); inputs are normalised to ImageNet statistics."""

    def __init__(self, kind: str, out_dim: int):
        super().__init__()
        self.kind = kind
        if kind == "resnet18":
            import torchvision

            self.backbone = torchvision.models.resnet18(weights=None)
            self.backbone.fc = nn.Linear(512, out_dim)
        elif kind == "tiny":
            self.backbone = nn.Sequential(
                nn.Conv2d(3, 16, 4, stride=2, padding=1), nn.SiLU(),
                nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.SiLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.SiLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, out_dim),
            )
        else:
            raise ValueError(f"unknown global encoder {kind!r} (expected 'resnet18' or 'tiny')")
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def load_imagenet_backbone(self, state_dict: dict) -> None:
        """Load torchvision ImageNet ResNet-18 weights into the backbone (the classifier is replaced)."""
        state = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        self.backbone.load_state_dict(state, strict=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone((image - self.mean.to(image.dtype)) / self.std.to(image.dtype))


class ConditionEncoder(ModelMixin, ConfigMixin):
    """Condition tokens f_c (TSDM, 3 tokens) or f_d (FCSD, 4 tokens with the emotion embedding)."""

    @register_to_config
    def __init__(
        self,
        condition_dim: int = 256,
        encoder: str = "resnet18",
        pose_dim: int = 6,
        expression_dim: int = 100,
        emotion_dim: int = 0,
    ):
        super().__init__()
        self.image_encoder = GlobalImageEncoder(encoder, condition_dim)
        self.pose_proj = nn.Linear(pose_dim, condition_dim)
        self.expression_proj = nn.Linear(expression_dim, condition_dim)
        self.emotion_proj = nn.Linear(emotion_dim, condition_dim) if emotion_dim else None
        self.norm = nn.LayerNorm(condition_dim)

    @property
    def num_tokens(self) -> int:
        return 4 if self.emotion_proj is not None else 3

    def forward(
        self,
        tsd_image: torch.Tensor,
        pose: torch.Tensor,
        expression: torch.Tensor,
        emotion: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dtype = self.pose_proj.weight.dtype
        tokens = [
            self.image_encoder(tsd_image.to(dtype)),
            self.pose_proj(pose.to(dtype)),
            self.expression_proj(expression.to(dtype)),
        ]
        if self.emotion_proj is not None:
            if emotion is None:
                raise ValueError("this condition encoder has an emotion token: pass emotion embeddings")
            tokens.append(self.emotion_proj(emotion.to(dtype)))
        return self.norm(torch.stack(tokens, dim=1))
