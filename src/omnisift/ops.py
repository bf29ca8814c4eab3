"""Small batched tensor helpers shared by the selection methods (no Python loops over tokens)."""

from __future__ import annotations

import torch

__all__ = ["group_slots", "descending_rank", "top_per_group", "cosine_rows"]

EPS = 1e-8


def group_slots(group: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of each element inside its group (groups stored contiguously) and each group's length."""
    lengths = torch.bincount(group, minlength=num_groups)
    starts = torch.cumsum(lengths, 0) - lengths
    return torch.arange(group.numel(), device=group.device) - starts[group], lengths


def descending_rank(scores: torch.Tensor) -> torch.Tensor:
    """Rank of every entry of each row when the row is sorted high to low (0 = highest; ties by index)."""
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(order)
    return ranks.scatter_(-1, order, positions)


def top_per_group(
    values: torch.Tensor, group: torch.Tensor, count: torch.Tensor, num_groups: int
) -> torch.Tensor:
    """[A] True for the `count[g]` highest values of each group g (values grouped contiguously)."""
    if values.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=values.device)
    slot, lengths = group_slots(group, num_groups)
    width = int(lengths.max())
    padded = values.new_full((num_groups, width), float("-inf"))
    padded[group, slot] = values
    return descending_rank(padded)[group, slot] < count[group]


def cosine_rows(dots: torch.Tensor, norm_a: torch.Tensor, norm_b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity from dot products and norms, with the eps guard of torch's cosine_similarity."""
    return dots / (norm_a.clamp_min(EPS) * norm_b.clamp_min(EPS))
