"""Padding per-sample synthetic sequences into a batch, as a generate batch is padded."""

from __future__ import annotations

import torch

__all__ = ["pad_samples"]


def pad_samples(
    built: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    pad_id: int,
    pad_position: float,
    padding_side: str = "left",
    position_dtype: torch.dtype = torch.long,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids [B, N], position_ids [3, B, N], attention_mask [B, N]) from each sample's ([n] tokens,
    [3, n] positions); padding gets `pad_id`, position `pad_position` and mask 0."""
    width = max(tokens.numel() for tokens, _ in built)
    batch = len(built)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    position_ids = torch.full((3, batch, width), pad_position, dtype=position_dtype)
    attention_mask = torch.zeros(batch, width, dtype=torch.long)
    for i, (tokens, positions) in enumerate(built):
        n = tokens.numel()
        where = slice(width - n, width) if padding_side == "left" else slice(0, n)
        input_ids[i, where] = tokens
        position_ids[:, i, where] = positions.to(position_dtype)
        attention_mask[i, where] = 1
    return input_ids, position_ids, attention_mask
