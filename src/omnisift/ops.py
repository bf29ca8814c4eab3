"""Small batched tensor helpers shared by the selection methods (no Python loops over tokens)."""

from __future__ import annotations

import threading

import torch

__all__ = [
    "group_slots",
    "descending_rank",
    "top_per_group",
    "cosine_rows",
    "gather_rows",
    "release_workspace",
]

EPS = 1e-8


class _Workspace(threading.local):
    """Per-thread reusable CPU buffers, keyed by dtype and inference mode (a buffer made under
    `torch.inference_mode` cannot be written outside it).

    A fresh CPU tensor of hundreds of MB costs more in page faults than the copy into it (measured:
    757 MB gather 0.72 s fresh vs 0.17 s into a reused buffer). CUDA's caching allocator already reuses
    memory, so buffers are kept on the CPU only. Requests up to `MAX_WORKSPACE_BYTES` are served from
    (and grow) the cached buffer; larger ones get a fresh tensor, so at most that much stays held.
    `release_workspace()` frees it.
    """

    def __init__(self) -> None:
        self.buffers: dict[tuple[torch.dtype, bool], torch.Tensor] = {}


_WORKSPACE = _Workspace()
MAX_WORKSPACE_BYTES = 1 << 30


def release_workspace() -> None:
    """Free the reusable CPU buffers of this thread."""
    _WORKSPACE.buffers.clear()


def gather_rows(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`flat[index]` for a [..]-shaped index of row numbers, without autograd.

    On the CPU the result lives in a reused buffer: it is only valid until the next call in this thread,
    so callers must not keep it.
    """
    shape = (*index.shape, flat.shape[-1])
    if flat.device.type != "cpu":
        return flat.detach()[index]
    needed = index.numel() * flat.shape[-1]
    if needed * flat.element_size() > MAX_WORKSPACE_BYTES:
        return flat.detach()[index]
    key = (flat.dtype, torch.is_inference_mode_enabled())
    buffer = _WORKSPACE.buffers.get(key)
    if buffer is None or buffer.numel() < needed:
        buffer = torch.empty(needed, dtype=flat.dtype)
        _WORKSPACE.buffers[key] = buffer
    out = buffer[:needed].view(-1, flat.shape[-1])
    torch.index_select(flat.detach(), 0, index.reshape(-1), out=out)
    return out.view(shape)


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
