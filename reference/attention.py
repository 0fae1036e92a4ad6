"""Decoupled cross-attention (IP-Adapter style) for the UNets of TSDM and FCSD.

Z = Attention(Q, K, V) + scale * Attention(Q, W'_k f, W'_v f): the UNet's own attention over its
text context, plus a second key/value projection of the condition tokens f (3 or 4 tokens of
``condition_dim``), added. W'_v starts at zero so a pretrained UNet is unchanged before training.
Self-attention layers get the same processor class with no extra projections, so every layer
accepts the ``condition_tokens`` keyword without warnings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _attend(attn, query: torch.Tensor, context: torch.Tensor, key_proj, value_proj) -> torch.Tensor:
    batch = query.shape[0]
    key = key_proj(context)
    value = value_proj(context)
    head_dim = key.shape[-1] // attn.heads
    q = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    k = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    v = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)


class DecoupledAttnProcessor(nn.Module):
    """Attention processor with an optional second K/V branch for condition tokens (SDPA)."""

    def __init__(self, hidden_size: int, condition_dim: int | None = None, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.to_k_c = self.to_v_c = None
        if condition_dim:
            self.to_k_c = nn.Linear(condition_dim, hidden_size, bias=False)
            self.to_v_c = nn.Linear(condition_dim, hidden_size, bias=False)
            nn.init.zeros_(self.to_v_c.weight)

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        condition_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        out = _attend(attn, query, context, attn.to_k, attn.to_v)
        if self.to_k_c is not None and condition_tokens is not None:
            tokens = condition_tokens.to(query.dtype)
            out = out + self.scale * _attend(attn, query, tokens, self.to_k_c, self.to_v_c)
        out = out.to(query.dtype)

        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def decoupled_processors(unet, condition_dim: int) -> dict[str, DecoupledAttnProcessor]:
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
        processors[name] = DecoupledAttnProcessor(hidden, condition_dim if is_cross else None)
    return processors
