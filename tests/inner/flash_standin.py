"""A CPU stand-in for flash attention, registered under transformers' attention and mask interfaces.

It follows flash attention's contract rather than SDPA's: the mask is the 2-D padding mask (or None,
when nothing is padded), never a 4-D one; each sample is unpadded to its valid tokens, attended causally
with the causal diagonal aligned to the last key (flash's bottom-right convention when queries are fewer
than keys), and padded query rows come back as zeros. Anything else (a 4-D mask) fails loudly, so a code
path that would hand flash attention a mask it cannot take shows up on CPU.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

NAME = "omnisift_cpu_varlen"  # no "flash" in the name: transformers would look for a flash kernel
calls: list[tuple[int, ...] | None] = []
"""Shape of the mask each text-model call received (None: no mask), for the tests to read."""


def _attention(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, is_causal=None, **kwargs
):
    if attention_mask is not None and attention_mask.ndim != 2:
        raise AssertionError(
            f"flash attention takes a 2-D padding mask or None, got {tuple(attention_mask.shape)}"
        )
    calls.append(None if attention_mask is None else tuple(attention_mask.shape))
    batch, heads, q_len, dim = query.shape
    k_len = key.shape[2]
    groups = heads // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    scaling = dim**-0.5 if scaling is None else scaling
    valid = torch.ones(batch, k_len, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    positions = kwargs.get("position_ids")
    if attention_mask is None and positions is not None and batch == 1 and q_len == k_len and q_len > 1:
        # flash's varlen path without a mask: a new sequence starts wherever the position is the minimum
        starts = (positions.reshape(-1) == positions.min()).nonzero().squeeze(1).tolist() + [q_len]
        pieces = [
            _attention(
                module,
                query[..., a:b, :],
                key[..., a:b, :],
                value[..., a:b, :],
                None,
                scaling,
                dropout,
                causal,
            )[0]
            for a, b in zip(starts, starts[1:])
        ]
        return torch.cat(pieces, dim=1), None
    out = torch.zeros(batch, q_len, heads, dim, dtype=query.dtype)
    for b in range(batch):
        keys = valid[b].nonzero().squeeze(1)
        queries = valid[b, k_len - q_len :].nonzero().squeeze(1)
        q = query[b, :, queries]  # [H, nq, d]
        k, v = key[b, :, keys], value[b, :, keys]
        logits = (q.float() @ k.float().transpose(1, 2)) * scaling
        if causal and q_len > 1:
            nq, nk = q.shape[1], k.shape[1]
            allowed = torch.arange(nk).unsqueeze(0) <= torch.arange(nq).unsqueeze(1) + (nk - nq)
            logits = logits.masked_fill(~allowed, float("-inf"))
        out[b, queries] = (logits.softmax(-1) @ v.float()).to(query.dtype).transpose(0, 1)
    return out, None


def register() -> str:
    """Register the stand-in (idempotent) and return the attn_implementation name to load a model with."""
    AttentionInterface.register(NAME, _attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, flash_attention_mask)
    return NAME
