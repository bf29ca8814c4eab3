"""DyCoke (arXiv 2411.15024): temporal token merging (TTM) before the LLM, video only.

DyCoke has two stages: temporal token merging of the visual tokens before the LLM, and dynamic pruning of
the visual KV cache while decoding. Only the first is implemented (docs/design.md#baselines): the second needs the LLM's
attention at every decode step and is out of scope; asking for it (`kv_pruning=True`) raises.

TTM, with the grids of a video (one grid = two frames merged by the temporal patch) as DyCoke's frames:

1. In every pair of grids (0, 1), (2, 3), ... the first grid is kept whole; the second drops its tokens
   most cosine-similar to the token at the same index of the first (unpruned) grid.
2. In every window of four grids (0, 1, 2, 3), (4, 5, 6, 7), ... grid 2 drops its tokens most
   cosine-similar to the same index of grid 0 (grid 0 is never pruned, so "kept part" = whole grid).
   "Merging" is dropping: the kept token stands for the dropped one and keeps its own position id.

Choices the paper leaves open, or that the budget rule of this project overrides:

- The merging ratio K is not a parameter: it is solved per video so that the video keeps exactly the
  sum of OmniSIFT's per-grid counts (`video_keep_per_grid`), hence OmniSIFT's count per sample. Every
  pruned grid (positions 1, 2, 3 of a window) drops about K of its tokens: the video's total drop D is
  spread over the pruned grids in proportion to their sizes with exact integer arithmetic (cumulative
  floor of D * cumsum(P) / S), so the counts add up to D exactly and differ from K * P by under a token.
- Reach: window starts (every fourth grid, and a video's only grid) are kept whole, so at most the pruned
  grids' tokens (about 75 % of a long video) can go; a budget asking for more raises a ValueError. K = 1
  (a pruned grid dropped entirely) is allowed.
- Windows restart at each video (two videos in one prompt never share a window); a last partial window
  applies the steps that exist (a 3-grid tail: grid 1 vs 0 and grid 2 vs 0).
- Grids of different sizes (not produced by the processor) compare the slots they share; a slot the
  reference lacks has cosine 0 (least redundant).
- Audio: DyCoke has no audio rule; `audio_drop` is applied by seeded uniform sampling within each group
  (see `shared.uniform_audio_keep`); at `audio_drop=0` audio is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..budget import Budget
from ..layout import Layout
from .base import register
from .shared import VideoOnlyMethod, drop_highest, per_video_targets, previous_grid_cosine

__all__ = ["DyCoke", "dycoke_roles", "dycoke_scores", "spread_drops"]

WINDOW = 4


def dycoke_roles(layout: Layout) -> torch.Tensor:
    """[G] position of each grid inside its window of four (0 = kept whole, 1/3 = vs previous, 2 = vs -2)."""
    grid_ids = torch.arange(layout.num_grids, device=layout.device)
    start = torch.where(layout.grid_video_start, grid_ids, torch.zeros_like(grid_ids)).cummax(0).values
    return (grid_ids - start) % WINDOW


def dycoke_scores(grids: torch.Tensor, roles: torch.Tensor) -> torch.Tensor:
    """[G, P] redundancy: cosine to the same slot of the reference grid (one back, or two back for role 2)."""
    norms = torch.linalg.vector_norm(grids, dim=-1)
    one_back = previous_grid_cosine(grids, norms, lag=1)
    two_back = previous_grid_cosine(grids, norms, lag=2)
    return torch.where((roles == 2).unsqueeze(1), two_back, one_back)


def spread_drops(
    layout: Layout, video_of_grid: torch.Tensor, num_videos: int, prunable: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """[G] tokens each grid drops so that each video drops `sizes - target`, spread over the prunable grids.

    Raises a ValueError when a video would have to drop more than its prunable grids hold.
    """
    sizes = layout.grid_size
    zeros = torch.zeros(num_videos, dtype=torch.long, device=layout.device)
    total = zeros.index_add(0, video_of_grid, sizes)
    room = zeros.index_add(0, video_of_grid, torch.where(prunable, sizes, 0))
    drop = total - target
    if bool((drop > room).any()):
        worst = int(torch.argmax((drop - room).double() / total.clamp_min(1)))
        most = 1.0 - (total[worst] - room[worst]).item() / max(int(total[worst]), 1)
        asked = drop[worst].item() / max(int(total[worst]), 1)
        raise ValueError(
            f"DyCoke cannot reach this video budget: it keeps every fourth grid whole, so it can drop at most "
            f"{most:.1%} of a video of {int(total[worst])} tokens, but the budget asks to drop {asked:.1%}. "
            "Lower video_drop (or raise retain) for dycoke."
        )
    pruned = torch.where(prunable, sizes, 0)
    cumulative = torch.cumsum(pruned, 0)
    video_offset = (cumulative - pruned)[_first_grid_of_video(layout)][video_of_grid]
    within = cumulative - video_offset  # cumulative prunable size inside the video, up to this grid
    room_g = room[video_of_grid].clamp_min(1)
    drop_g = drop[video_of_grid]
    upto = torch.div(drop_g * within, room_g, rounding_mode="floor")
    before = torch.div(drop_g * (within - pruned), room_g, rounding_mode="floor")
    return torch.where(prunable, upto - before, torch.zeros_like(upto))


def _first_grid_of_video(layout: Layout) -> torch.Tensor:
    return torch.nonzero(layout.grid_video_start).squeeze(1)


@register
@dataclass
class DyCoke(VideoOnlyMethod):
    """Temporal token merging in windows of four grids (decode-time KV pruning not supported)."""

    name = "dycoke"
    paper = "DyCoke, arXiv 2411.15024"
    modalities = "video"
    summary: ClassVar[str] = (
        "video: temporal merging in windows of 4 grids (pairs, then grid 2 vs 0); K solved for the budget"
    )

    kv_pruning: bool = False
    """DyCoke's decode-time KV cache pruning: not supported (raises when True)."""

    def __post_init__(self) -> None:
        if self.kv_pruning:
            raise ValueError(
                "DyCoke's decode-time KV cache pruning is not supported: it needs the LLM's attention at every "
                "decode step. Only its temporal token merging before the LLM is implemented (kv_pruning=False)."
            )

    def video_keep(
        self, layout: Layout, grids: torch.Tensor, present: torch.Tensor, budget: Budget
    ) -> torch.Tensor:
        roles = dycoke_roles(layout)
        video_of_grid, num_videos, target = per_video_targets(layout, budget)
        drops = spread_drops(layout, video_of_grid, num_videos, roles != 0, target)
        return drop_highest(dycoke_scores(grids, roles), present, layout.grid_size - drops)
