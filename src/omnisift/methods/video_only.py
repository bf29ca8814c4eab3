"""The frame the video-only baselines share (EVS, VidCom2, DyCoke).

Each brings its own video rule; audio follows SPEC 6: seeded uniform sampling within each 2-second
group at the budget's audio drop (untouched at `audio_drop=0`), so every method keeps omnisift's counts.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from ..budget import Budget, video_keep_per_grid
from ..layout import Layout
from .base import Selection, SelectionMethod
from .omnisift import gather_grids, keep_from_parts
from .random_baseline import uniform_audio_keep

__all__ = ["VideoOnlyMethod", "grid_video_index", "per_video_targets"]


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

    @abstractmethod
    def video_keep(
        self, layout: Layout, grids: torch.Tensor, present: torch.Tensor, budget: Budget
    ) -> torch.Tensor:
        """[G, P] True for the video tokens kept, from the [G, P, D] grids and their [G, P] present mask."""

    def select(
        self,
        layout: Layout,
        inputs_embeds: torch.Tensor,
        budget: Budget,
        *,
        selector: nn.Module | None = None,
        seed: int = 0,
        audio_saliency: torch.Tensor | None = None,
    ) -> Selection:
        if layout.num_grids == 0:
            return Selection(keep=torch.ones_like(layout.valid), inputs_embeds=inputs_embeds)
        flat = inputs_embeds.reshape(-1, inputs_embeds.shape[-1])
        grids, present, index = gather_grids(layout, flat)
        video_kept = self.video_keep(layout, grids, present, budget)
        del grids
        audio_flat, audio_kept = uniform_audio_keep(layout, budget, seed)
        keep = keep_from_parts(layout, video_kept, index, audio_flat, audio_kept)
        return Selection(keep=keep, inputs_embeds=inputs_embeds)
