"""The trainable parts of ConsistentAvatar built from diffusers / torchvision parts.

* :class:`DecoupledUNet2DConditionModel`: a diffusers UNet whose cross-attention layers carry the
  decoupled condition branch on diffusers' IP-Adapter processor (reference/attention.py); TSDM and
  FCSD each use one. In sd15 the TSDM's shares the FCSD's frozen SD weights.
* :class:`GlobalImageEncoder`: the paper's global encoder E, image -> ``condition_dim`` vector.
  ``"resnet18"`` is a torchvision ResNet-18 (ImageNet weights from a local file when a full-size
  model is built, the encoder DiffusionRig uses) with its classifier replaced by a linear layer;
  ``"tiny"`` is a three-layer CNN for CPU tests.
* :class:`ConditionEncoder`: f = [E(TSD), Linear(pose 6), Linear(expression 100), Linear(emotion)]
  as tokens (N, 3 or 4, ``condition_dim``); the emotion token exists when ``emotion_dim > 0``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import MultiIPAdapterImageProjection
from diffusers.models.model_loading_utils import load_state_dict
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME
from diffusers.utils.hub_utils import _add_variant
from safetensors.torch import save_file
from torch import nn

from metrics.errors import CabenchError
from reference.attention import LEGACY_KEYS, decoupled_processors, dropped_branches, is_condition_parameter


class DecoupledUNet2DConditionModel(UNet2DConditionModel):
    """UNet2DConditionModel + decoupled cross-attention on condition tokens (reference/attention.py).

    Call it as a diffusers UNet with IP-Adapter embeddings, ``unet(x, t, context,
    added_cond_kwargs={"image_embeds": [tokens]})``, or with ``condition_tokens=tokens`` (the same
    thing); ``cross_attention_kwargs={"condition_tokens": tokens}`` is read as well. Without tokens
    it raises (diffusers' check), so the condition cannot be dropped silently.

    ``shares_base_with="unet"`` (the sd15 TSDM) marks a UNet whose frozen SD weights are the
    pipeline's ``unet``: one copy in memory, and its folder holds only the config and the
    condition branch (:meth:`save_pretrained`, :meth:`from_pretrained`); the pipeline ties the base
    when it is assembled.
    """

    def __init__(self, condition_dim: int = 256, shares_base_with: str | None = None, **unet_kwargs):
        if unet_kwargs.get("encoder_hid_dim_type") == "ip_image_proj":
            unet_kwargs.pop("encoder_hid_dim_type")  # not a UNet2DConditionModel option: set up below
        super().__init__(**unet_kwargs)  # registers the UNet's own config
        self.register_to_config(condition_dim=condition_dim, shares_base_with=shares_base_with,
                                encoder_hid_dim_type="ip_image_proj")
        self.encoder_hid_proj = MultiIPAdapterImageProjection([nn.Identity()])
        self.set_attn_processor(decoupled_processors(self, condition_dim))

    @staticmethod
    def _get_init_keys(input_class):
        # the config holds every UNet2DConditionModel argument plus this class's own
        keys = set(inspect.signature(input_class.__init__).parameters)
        if issubclass(input_class, DecoupledUNet2DConditionModel):
            keys |= set(inspect.signature(UNet2DConditionModel.__init__).parameters)
        return keys

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, condition_dim: int) -> DecoupledUNet2DConditionModel:
        """Copy a (pretrained) UNet's weights; only the new condition projections start fresh."""
        model = cls(condition_dim=condition_dim, **_unet_config(unet))
        missing, unexpected = model.load_state_dict(unet.state_dict(), strict=False)
        if unexpected or any(not is_condition_parameter(k) for k in missing):
            raise RuntimeError(f"UNet weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        if unet.dtype != model.dtype:
            model = model.to(dtype=unet.dtype)
        return model.to(unet.device)

    @classmethod
    def sharing_base(cls, unet: DecoupledUNet2DConditionModel, condition_dim: int) -> DecoupledUNet2DConditionModel:
        """A UNet with its own fresh condition branch on ``unet``'s frozen base weights (no copy)."""
        with init_empty_weights():
            model = cls(condition_dim=condition_dim, **{**_unet_config(unet), "shares_base_with": "unet"})
        model.set_attn_processor(decoupled_processors(model, condition_dim))  # real (not meta) branch weights
        model.tie_base(unet)
        return model.to(device=unet.device, dtype=unet.dtype)

    def tie_base(self, unet: UNet2DConditionModel) -> None:
        """Make every non-branch parameter of this UNet the very tensor of ``unet``'s."""
        for name, parameter in unet.named_parameters():
            if is_condition_parameter(name):
                continue
            owner, _, leaf = name.rpartition(".")
            target = self.get_submodule(owner)
            current = getattr(target, leaf)
            if current.shape != parameter.shape:
                raise CabenchError(f"cannot share the UNet base: {name} is {tuple(current.shape)} here and "
                                   f"{tuple(parameter.shape)} in the pipeline's unet")
            setattr(target, leaf, parameter)

    def forward(self, sample, timestep, encoder_hidden_states, *args, condition_tokens=None, **kwargs):
        if self.config.shares_base_with and self.conv_in.weight.is_meta:
            raise CabenchError(f"this UNet shares its frozen base with the pipeline's {self.config.shares_base_with!r}; "
                               "load it through ConsistentAvatarPipeline.from_pretrained")
        attention_kwargs = kwargs.get("cross_attention_kwargs")
        if attention_kwargs and "condition_tokens" in attention_kwargs:
            attention_kwargs = dict(attention_kwargs)
            condition_tokens = attention_kwargs.pop("condition_tokens")
            kwargs["cross_attention_kwargs"] = attention_kwargs or None
        if condition_tokens is not None:
            kwargs["added_cond_kwargs"] = {**(kwargs.get("added_cond_kwargs") or {}), "image_embeds": [condition_tokens]}
        if "image_embeds" not in (kwargs.get("added_cond_kwargs") or {}):
            raise CabenchError("DecoupledUNet2DConditionModel needs its condition tokens: pass condition_tokens= "
                               "or added_cond_kwargs={'image_embeds': [tokens]}")
        return super().forward(sample, timestep, encoder_hidden_states, *args, **kwargs)

    # ----- the condition branch survives attention-processor changes, or the change is refused ----
    def set_attn_processor(self, processor) -> None:
        names = list(self.attn_processors)
        new = processor if isinstance(processor, dict) else dict.fromkeys(names, processor)
        dropped = dropped_branches({name: new.get(name) for name in names}, self.config.condition_dim)
        if dropped:
            raise CabenchError(f"this attention processor would remove the decoupled cross-attention (and its "
                               f"trained weights) from {len(dropped)} layer(s), first {dropped[0]}; cross-attention "
                               "layers need an IP-Adapter processor that carries the condition branch")
        super().set_attn_processor(processor)

    def set_default_attn_processor(self) -> None:
        raise CabenchError("the default attention processor would remove the decoupled cross-attention (and its "
                           "trained weights); this UNet's processors are already SDPA")

    def set_attention_slice(self, slice_size) -> None:
        raise CabenchError("attention slicing would remove the decoupled cross-attention (diffusers has no sliced "
                           "IP-Adapter processor); leave it off for this UNet")

    # ----- a UNet that shares its base is saved and loaded as its condition branch alone ----------
    def save_pretrained(self, save_directory, is_main_process: bool = True, safe_serialization: bool = True,
                        variant: str | None = None, **kwargs) -> None:
        if not self.config.shares_base_with:
            return super().save_pretrained(save_directory, is_main_process=is_main_process,
                                           safe_serialization=safe_serialization, variant=variant, **kwargs)
        if not is_main_process:
            return None
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_config(folder)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items() if is_condition_parameter(k)}
        if safe_serialization:
            save_file(state, folder / _add_variant(SAFETENSORS_WEIGHTS_NAME, variant), metadata={"format": "pt"})
        else:
            torch.save(state, folder / _add_variant(WEIGHTS_NAME, variant))
        return None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        folder = Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or "")
        config = cls.load_config(folder) if (folder / "config.json").is_file() else {}
        if not config.get("shares_base_with"):
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        variant, dtype = kwargs.get("variant"), kwargs.get("dtype") or kwargs.get("torch_dtype")
        with init_empty_weights():
            model = cls.from_config(config)
        model.set_attn_processor(decoupled_processors(model, config["condition_dim"]))
        files = [folder / _add_variant(name, variant) for name in (SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME)]
        files = [f for f in files if f.is_file()]
        if not files:
            raise OSError(f"{folder} holds no {_add_variant(SAFETENSORS_WEIGHTS_NAME, variant)}")
        state = load_state_dict(str(files[0]))
        for old, new in LEGACY_KEYS:
            state = {k.replace(old, new): v for k, v in state.items()}
        expected = {k for k in model.state_dict() if is_condition_parameter(k)}
        if set(state) != expected:
            raise OSError(f"{files[0]}: expected the condition-branch weights of {len(expected)} parameters, "
                          f"got {len(state)} (e.g. {sorted(set(state) ^ expected)[:2]})")
        model.load_state_dict(state, strict=False)
        model.register_to_config(_name_or_path=str(folder))
        return model.to(dtype=dtype) if dtype is not None else model

    def _fix_state_dict_keys_on_load(self, state_dict) -> None:
        """Checkpoints written before the branch moved onto diffusers' IP-Adapter processor load too."""
        super()._fix_state_dict_keys_on_load(state_dict)
        for key in [k for k in state_dict if ".processor.to_k_c." in k or ".processor.to_v_c." in k]:
            new = key
            for old, replacement in LEGACY_KEYS:
                new = new.replace(old, replacement)
            state_dict[new] = state_dict.pop(key)
        return state_dict


def _unet_config(unet: UNet2DConditionModel) -> dict:
    """The constructor arguments of ``unet`` (a plain or decoupled UNet), without bookkeeping keys."""
    skip = {"condition_dim", "shares_base_with", "encoder_hid_dim_type"}
    return {k: v for k, v in unet.config.items() if not k.startswith("_") and k not in skip}


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
