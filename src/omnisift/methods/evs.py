"""EVS, Efficient Video Sampling (arXiv 2510.14624), video only, as described in the paper and docs/design.md#baselines.

Each video token is scored by its dissimilarity `1 - cos` to the token at the same index of the previous
grid (temporal patch pair) of the same video; the first grid of a video is always kept; the tokens kept
are the global top of the whole video, not a per-frame quota (ties go to the earlier token).

Choices the paper leaves open, or that the budget rule of this project overrides:

- Count: the paper keeps `max(P, int(T * P * (1 - q)))` tokens of a video of T grids of P tokens. Here
  the count is the sum of OmniSIFT's per-grid counts over the video's grids (`video_keep_per_grid`),
  so EVS keeps exactly OmniSIFT's number of video tokens per video, hence per sample; there is no `q`.
- The first grid's priority: its tokens rank above every other token of the video. When the budget is
  smaller than one grid (a one-grid video), the first grid keeps its tokens least cosine-similar to the
  grid's mean (the only case where this spatial tie-break is used).
- A grid whose previous grid has another size (never in a real video, every grid of one video has the
  same size) compares the slots they share; a slot the previous grid lacks scores 1 (cosine 0).
- Audio: EVS has no audio rule; `audio_drop` is applied by seeded uniform sampling within each group
  (see `shared.uniform_audio_keep`); at `audio_drop=0` audio is untouched.
- Separate videos in one prompt are ranked separately (a "video" is one contiguous run of video/audio).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..budget import Budget
from ..layout import Layout
from ..ops import top_per_group
from .base import register
from .shared import VideoOnlyMethod, per_video_targets, previous_grid_cosine, spatial_cosine

__all__ = ["EVS", "evs_scores"]

FIRST_GRID_BONUS = 4.0
"""Added to first-grid scores: above any `1 - cos` (at most 2), so the first grid always ranks first."""


def evs_scores(layout: Layout, grids: torch.Tensor) -> torch.Tensor:
    """[G, P] EVS priority: `1 - cos` to the previous grid's same slot; first grids above everything."""
    norms = torch.linalg.vector_norm(grids, dim=-1)
    dissimilar = 1.0 - previous_grid_cosine(grids, norms)
    first = FIRST_GRID_BONUS + (1.0 - spatial_cosine(layout, grids, norms))
    return torch.where(layout.grid_video_start.unsqueeze(1), first, dissimilar)


@register
@dataclass
class EVS(VideoOnlyMethod):
    """Global top of temporal dissimilarity over each video, first grid always kept."""

    name = "evs"
    paper = "EVS, Efficient Video Sampling, arXiv 2510.14624"
    modalities = "video"
    summary: ClassVar[str] = (
        "video: keep the video-wide top of 1 - cos to the previous grid's patch, first grid kept"
    )

    def video_keep(
        self, layout: Layout, grids: torch.Tensor, present: torch.Tensor, budget: Budget
    ) -> torch.Tensor:
        scores = evs_scores(layout, grids).float()
        video_of_grid, num_videos, targets = per_video_targets(layout, budget)
        # Tokens of a video are contiguous in layout order (grid by grid, then sequence order), so the
        # video-wide top with ties to the earlier token is a per-group top over that order.
        token_scores = scores[layout.video_grid, layout.video_rank]
        kept = top_per_group(token_scores, video_of_grid[layout.video_grid], targets, num_videos)
        video_kept = torch.zeros_like(present)
        video_kept[layout.video_grid, layout.video_rank] = kept
        return video_kept
