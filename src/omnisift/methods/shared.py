"""Building blocks shared by selection methods that have no common base (OmniSIFT's own rules and its
select loop live in `methods/omnisift.py`, which its ablations subclass).

- Grid gathering, drop-by-score and keep-mask assembly used by several methods.
- Seeded uniform sampling and the frame of the video-only baselines (`VideoOnlyMethod`: audio sampled
  uniformly per group at the budget's audio drop, docs/design.md#budgets).
- Exact integer count fitting (`fit_counts`) for methods that spread a budget their own way.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..budget import Budget, audio_keep_per_group, group_audio_sizes, video_keep_per_grid
from ..layout import Layout
from ..ops import cosine_rows, descending_rank, group_slots, top_per_group
from .base import Selection, SelectionMethod

if TYPE_CHECKING:
    pass

__all__ = [
    "VideoOnlyMethod",
    "cpu_generator",
    "drop_highest",
    "fit_counts",
    "gather_grids",
    "grid_presence",
    "grid_video_index",
    "keep_all",
    "keep_from_parts",
    "per_video_targets",
    "previous_grid_cosine",
    "spatial_cosine",
    "uniform_audio_keep",
    "uniform_scores",
]


def keep_all(layout: Layout, inputs_embeds: torch.Tensor) -> Selection:
    """The selection of a batch without video: everything kept."""
    return Selection(keep=torch.ones_like(layout.valid), inputs_embeds=inputs_embeds)


def gather_grids(
    layout: Layout, flat_embeds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[G, P, D] video tokens grid by grid (zeros where a grid is shorter), the [G, P] mask and [G, P] index."""
    index, present = layout.grid_index_matrix()
    grids = flat_embeds[index]
    if layout.video_flat.numel() != present.numel():
        grids.masked_fill_(~present.unsqueeze(-1), 0)
    return grids, present, index


def drop_highest(scores: torch.Tensor, present: torch.Tensor, keep_counts: torch.Tensor) -> torch.Tensor:
    """[G, P] True for the tokens kept when each grid drops its `size - keep` highest scores."""
    scores = scores.masked_fill(~present, float("-inf"))
    drop_counts = present.sum(1) - keep_counts
    return present & (descending_rank(scores) >= drop_counts.unsqueeze(1))


def keep_from_parts(
    layout: Layout,
    video_kept: torch.Tensor,
    video_index: torch.Tensor,
    audio_flat: torch.Tensor | None = None,
    audio_kept: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, N] keep mask: everything but the dropped video slots and dropped audio tokens."""
    keep = torch.ones(layout.batch_size * layout.seq_len, dtype=torch.bool, device=layout.device)
    keep[video_index[~video_kept & grid_presence(layout)]] = False
    if audio_flat is not None and audio_kept is not None:
        keep[audio_flat[~audio_kept]] = False
    return keep.view(layout.batch_size, layout.seq_len)


def previous_grid_cosine(grids: torch.Tensor, norms: torch.Tensor, lag: int = 1) -> torch.Tensor:
    """[G, P] cosine of each slot to the same slot `lag` grids earlier (0 for the first `lag` grids)."""
    g, p, d = grids.shape
    out = grids.new_zeros(g, p)
    if g > lag:
        # Per-token dot products as a batched (1 x D) @ (D x 1): no [G, P, D] temporary.
        dots = torch.bmm(grids[lag:].reshape(-1, 1, d), grids[:-lag].reshape(-1, d, 1)).view(g - lag, p)
        out[lag:] = cosine_rows(dots, norms[lag:], norms[:-lag])
    return out


def spatial_cosine(layout: Layout, grids: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """[G, P] cosine of each token to the mean of its grid."""
    means = grids.sum(1) / layout.grid_size.clamp_min(1).unsqueeze(1).to(grids.dtype)
    dots = torch.bmm(grids, means.unsqueeze(-1)).squeeze(-1)
    return cosine_rows(dots, norms, torch.linalg.vector_norm(means, dim=-1, keepdim=True))


AUDIO_STREAM = 0x5EED
"""Offset of the audio generator's seed, so audio draws do not depend on how many video tokens exist."""


def cpu_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`; raises a clear error for a non-integer seed."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    return torch.Generator(device="cpu").manual_seed(seed)


def uniform_scores(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform random scores drawn on the CPU (device-independent), moved to `device`."""
    return torch.rand(shape, generator=generator, dtype=torch.float64).to(device)


def grid_presence(layout: Layout) -> torch.Tensor:
    """[G, P] True on the slots that hold a video token."""
    slots = torch.arange(layout.max_grid_size, device=layout.device)
    return slots.unsqueeze(0) < layout.grid_size.unsqueeze(1)


def uniform_audio_keep(
    layout: Layout, budget: Budget, seed: int
) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """Seeded uniform audio dropping within each group, at OmniSIFT's per-group counts.

    Returns the flat indices of the grouped audio tokens and whether each is kept, or (None, None) when
    no audio is dropped (no grouped audio, or `audio_drop` is 0 for every sample).
    """
    grouped = layout.audio_group >= 0
    if not bool(grouped.any()) or not bool((budget.audio_drop > 0).any()):
        return None, None
    audio_flat = layout.audio_flat[grouped]
    audio_group = layout.audio_group[grouped]
    counts = audio_keep_per_group(layout, budget.audio_drop, group_audio_sizes(layout))
    scores = uniform_scores((audio_flat.numel(),), cpu_generator(seed + AUDIO_STREAM), layout.device)
    return audio_flat, top_per_group(scores, audio_group, counts, layout.num_groups)


_BISECTION_STEPS = 64


def largest_remainder(
    quotas: torch.Tensor, low: torch.Tensor, high: torch.Tensor, segment: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Integer counts in [low, high] close to `quotas`, summing to `target` in every segment.

    Floors the quotas, then gives one more to the elements with the largest fractional parts (or one less
    to the smallest, when the floors overshoot) until each segment's sum is its target. Segments must be
    contiguous and the target reachable (sum(low) <= target <= sum(high)).
    """
    num = target.numel()
    counts = torch.minimum(torch.maximum(torch.floor(quotas).long(), low), high)
    have = torch.zeros(num, dtype=torch.long, device=quotas.device).index_add(0, segment, counts)
    missing = target - have
    frac = (quotas - counts.double()).clamp(-1.0, 1.0)
    up_rank = _rank_in_segment(torch.where(counts < high, frac, float("-inf")), segment, num)
    counts = counts + ((up_rank < missing[segment]) & (counts < high)).long()
    down_rank = _rank_in_segment(torch.where(counts > low, -frac, float("-inf")), segment, num)
    counts = counts - ((down_rank < (-missing).clamp_min(0)[segment]) & (counts > low)).long()
    return counts


def _rank_in_segment(values: torch.Tensor, segment: torch.Tensor, num: int) -> torch.Tensor:
    """Descending rank of each value inside its (contiguous) segment, ties to the earlier element."""
    slot, lengths = group_slots(segment, num)
    padded = values.new_full((num, int(lengths.max())), float("-inf"))
    padded[segment, slot] = values
    return descending_rank(padded)[segment, slot]


def fit_counts(
    quota_of: Callable[[torch.Tensor], torch.Tensor],
    segment: torch.Tensor,
    target: torch.Tensor,
    low: float,
    high: float,
    increasing: bool,
    min_count: torch.Tensor,
    max_count: torch.Tensor,
) -> torch.Tensor:
    """Per-element integer counts whose per-segment sums equal `target`.

    `quota_of(x)` maps one parameter per segment ([S] float64) to float quotas per element, clamped to
    [min_count, max_count] here and monotone in x (increasing or not). x is found in [low, high] by
    bisection so that the quotas add up to the target, then the quotas are rounded by largest remainder.
    """
    num = target.numel()
    device = target.device

    def total(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quotas = torch.minimum(torch.maximum(quota_of(x), min_count.double()), max_count.double())
        return quotas, torch.zeros(num, dtype=torch.float64, device=device).index_add(0, segment, quotas)

    lo = torch.full((num,), float(low), dtype=torch.float64, device=device)
    hi = torch.full((num,), float(high), dtype=torch.float64, device=device)
    goal = target.double()
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        _, sums = total(mid)
        above = sums >= goal if increasing else sums <= goal
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    quotas, _ = total(hi)
    return largest_remainder(quotas, min_count, max_count, segment, target)


def grid_video_index(layout: Layout) -> tuple[torch.Tensor, int]:
    """[G] index of the video each grid belongs to, and the number of videos in the batch."""
    video = torch.cumsum(layout.grid_video_start.long(), 0) - 1
    return video, int(layout.grid_video_start.sum())


def per_video_targets(layout: Layout, budget: Budget) -> tuple[torch.Tensor, int, torch.Tensor]:
    """[G] video of each grid, the number of videos, and [V] video tokens each video keeps (omnisift's
    total), for methods that spread a video's budget over its grids their own way."""
    video_of_grid, num_videos = grid_video_index(layout)
    target = torch.zeros(num_videos, dtype=torch.long, device=layout.device).index_add(
        0, video_of_grid, video_keep_per_grid(layout, budget.video_drop)
    )
    return video_of_grid, num_videos, target


@dataclass
class VideoOnlyMethod(SelectionMethod):
    """A method with a video rule only: `video_keep` decides the video, audio is sampled uniformly."""

    modalities = "video"

    seed: int = 0
    """Seed of the uniform audio sampling."""

    @abstractmethod
    def video_keep(
        self, layout: Layout, grids: torch.Tensor, present: torch.Tensor, budget: Budget
    ) -> torch.Tensor:
        """[G, P] True for the video tokens kept, from the [G, P, D] grids and their [G, P] present mask."""

    def select(self, layout: Layout, inputs_embeds: torch.Tensor, budget: Budget) -> Selection:
        if layout.num_grids == 0:
            return keep_all(layout, inputs_embeds)
        flat = inputs_embeds.reshape(-1, inputs_embeds.shape[-1])
        grids, present, index = gather_grids(layout, flat)
        video_kept = self.video_keep(layout, grids, present, budget)
        del grids
        audio_flat, audio_kept = uniform_audio_keep(layout, budget, self.seed)
        keep = keep_from_parts(layout, video_kept, index, audio_flat, audio_kept)
        return Selection(keep=keep, inputs_embeds=inputs_embeds)
