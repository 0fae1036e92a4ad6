"""Decoupled cross-attention (IP-Adapter style) for the UNets of TSDM and FCSD, on diffusers' IP-Adapter parts.

Z = Attention(Q, K, V) + scale * Attention(Q, W'_k f, W'_v f): the UNet's own attention over its text
context plus a second key/value projection of the condition tokens f (3 or 4 tokens of
``condition_dim``), added. This is exactly diffusers' IP-Adapter, so the reference uses its parts
rather than a copy:

* every cross-attention layer (``attn2``) gets an :class:`DecoupledAttnProcessor`, a subclass of
  ``IPAdapterAttnProcessor2_0`` (SDPA) whose W'_k, W'_v are ``to_k_ip[0]``, ``to_v_ip[0]``; W'_v starts
  at zero so a pretrained UNet is unchanged before training;
* self-attention layers keep diffusers' ``AttnProcessor2_0``;
* the UNet receives the tokens as IP-Adapter image embeddings (``added_cond_kwargs={"image_embeds":
  [f]}``) through an identity ``encoder_hid_proj`` (the condition encoder already makes the tokens),
  so diffusers' own pipelines drive it with ``ip_adapter_image_embeds=[f]``.

diffusers' attention switches that know IP-Adapter keep the branch (xformers on and off copy its
weights); a switch that would replace it with a plain processor is refused by the UNet
(reference/models.py), and :func:`check_condition_branch` catches one made on a single layer.
"""

from __future__ import annotations

import re

from diffusers.models.attention_processor import AttnProcessor2_0, IPAdapterAttnProcessor2_0
from torch import nn

from metrics.errors import CabenchError

# Parameter names of the condition branch; ``to_k_c`` / ``to_v_c`` are the names before the branch
# moved onto diffusers' IP-Adapter processor (checkpoints written then still load: see LEGACY_KEYS).
_BRANCH = re.compile(r"\.processor\.to_[kv]_ip\.\d+\.")
LEGACY_KEYS = ((".processor.to_k_c.", ".processor.to_k_ip.0."), (".processor.to_v_c.", ".processor.to_v_ip.0."))


class DecoupledAttnProcessor(IPAdapterAttnProcessor2_0):
    """diffusers' IP-Adapter processor with one condition branch whose value projection starts at zero."""

    def __init__(self, hidden_size: int, condition_dim: int, num_tokens: int = 4, scale: float = 1.0):
        super().__init__(hidden_size, cross_attention_dim=condition_dim, num_tokens=(num_tokens,), scale=scale)
        nn.init.zeros_(self.to_v_ip[0].weight)


def is_condition_parameter(name: str) -> bool:
    """True for the parameters of the decoupled branch (W'_k, W'_v) in a UNet's ``named_parameters``."""
    return bool(_BRANCH.search(name))


def carries_condition_branch(processor, condition_dim: int) -> bool:
    """Whether an attention processor holds a decoupled branch reading ``condition_dim``-d tokens."""
    projections = getattr(processor, "to_k_ip", None)
    return (isinstance(projections, nn.ModuleList) and len(projections) == 1
            and getattr(projections[0], "in_features", None) == condition_dim)


def decoupled_processors(unet, condition_dim: int) -> dict:
    """One processor per attention layer of ``unet``: a condition branch on every cross-attention."""
    block_channels = unet.config.block_out_channels
    processors = {}
    for name in unet.attn_processors:
        if name.startswith("mid_block"):
            hidden = block_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(block_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = block_channels[int(name[len("down_blocks.")])]
        is_cross = name.endswith("attn2.processor")
        processors[name] = DecoupledAttnProcessor(hidden, condition_dim) if is_cross else AttnProcessor2_0()
    return processors


def dropped_branches(processors: dict, condition_dim: int) -> list[str]:
    """Cross-attention layers of ``processors`` ({layer: processor}) that have lost the condition branch."""
    return [name for name, processor in processors.items()
            if name.endswith("attn2.processor") and not carries_condition_branch(processor, condition_dim)]


def check_condition_branch(unet) -> None:
    """Raise if any cross-attention layer of ``unet`` lost its decoupled branch (e.g. a processor set on
    one layer with ``Attention.set_processor``, which diffusers allows with only a log line)."""
    dropped = dropped_branches(unet.attn_processors, unet.config.condition_dim)
    if dropped:
        raise CabenchError(f"the decoupled cross-attention was removed from {len(dropped)} layer(s) "
                           f"(first: {dropped[0]}); its condition would be ignored. Reload the pipeline.")
