"""Token scores for inner-LLM drops: the attention the last text token pays to every token.

Recomputed from a decoder layer's own pieces (input norm, q/k projections, per-head q/k norms where the
family has them, M-RoPE tables) on the hidden states entering the next layer, so no attention matrix is
ever read from the model: it works the same under SDPA, eager and flash attention.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["last_text_index", "last_text_attention"]


def last_text_index(valid: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
    """[B] slot of each sample's last valid token that is neither audio nor video."""
    text = valid & ~media
    if not bool(text.any(1).all()):
        raise RuntimeError(
            "omnisift: a sample has no text token to score media with (inner-LLM methods need one)."
        )
    slots = torch.arange(valid.shape[1], device=valid.device).expand_as(valid)
    return torch.where(text, slots, -1).amax(1)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


@torch.no_grad()
def last_text_attention(
    layer: nn.Module,
    hidden: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    valid: torch.Tensor,
    media: torch.Tensor,
) -> torch.Tensor:
    """[B, S] float32: softmax over every valid token of (last text token's query . key) / sqrt(d) per head,
    averaged over heads, with `layer`'s norm, projections and the given rotary tables ([B, S, head_dim])."""
    attn = layer.self_attn
    batch, length, _ = hidden.shape
    head_dim = attn.head_dim
    query_slot = last_text_index(valid, media)
    rows = torch.arange(batch, device=hidden.device)
    normed = layer.input_layernorm(hidden)
    query = attn.q_proj(normed[rows, query_slot]).view(batch, 1, -1, head_dim)
    key = attn.k_proj(normed).view(batch, length, -1, head_dim)
    if getattr(attn, "q_norm", None) is not None:
        query, key = attn.q_norm(query), attn.k_norm(key)
    query = _rope(
        query,
        cos[rows, query_slot].unsqueeze(1).unsqueeze(2),
        sin[rows, query_slot].unsqueeze(1).unsqueeze(2),
    )
    key = _rope(key, cos.unsqueeze(2), sin.unsqueeze(2))
    heads, kv_heads = query.shape[2], key.shape[2]
    key = key.repeat_interleave(heads // kv_heads, dim=2)
    logits = torch.einsum("bhd,bshd->bhs", query[:, 0].float(), key.float()) * float(attn.scaling)
    logits = logits.masked_fill(~valid.unsqueeze(1), float("-inf"))
    return logits.softmax(-1).mean(1)
