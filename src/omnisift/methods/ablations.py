"""OmniSIFT ablations (arXiv 2602.04804, Figure 5): one stage changed, everything else as `omnisift`.

All three subclass `OmniSIFT` and keep its counts (`video_keep_per_grid`, `audio_keep_per_group`) and its audio rule,
with the trained selector.

- `omnisift-no-temporal`: both grids of a group use the spatial rule (drop the tokens most similar to
  their own grid's mean); no cross-frame comparison.
- `omnisift-no-spatial`: every grid uses the temporal rule. The second grid of a group is scored as in
  OmniSIFT (against the same patch of the group's unpruned first grid); the first grid of a group is
  scored against the same patch of the previous grid of the same video (the previous group's last grid).
  Choice made here, where the paper is silent: the first grid of a video has no previous grid, so it keeps
  the same count at a regular spatial stride (the tokens of rank floor((j + 1/2) * n / keep)), which uses
  no similarity at all; so does a first grid whose previous grid has another size.
- `omnisift-audio-only`: the selector scores each group's audio with the audio tokens themselves as keys
  and values (no visual anchors); video pruning is OmniSIFT's STVP. The selector weights are the ones
  given (the paper trains one per variant; a selector trained with anchors is not retrained here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..budget import Budget, video_keep_per_grid
from ..layout import Layout
from .base import register
from .omnisift import OmniSIFT
from .shared import gather_grids, previous_grid_cosine, spatial_cosine

__all__ = ["OmniSIFTNoSpatial", "OmniSIFTNoTemporal", "OmniSIFTAudioOnly", "stride_priority"]


def stride_priority(layout: Layout, keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[G, P] drop priority keeping `keep[g]` tokens at a regular stride: 0 on the stride, 1 elsewhere."""
    slots = torch.arange(layout.max_grid_size, device=layout.device)
    sizes = layout.grid_size.unsqueeze(1)
    counts = keep.clamp_min(1).unsqueeze(1)
    # slot s is on the stride iff some j < keep has floor((2j + 1) * n / (2 keep)) == s.
    j = torch.div(2 * slots.unsqueeze(0) * counts + sizes - 1, 2 * sizes.clamp_min(1), rounding_mode="floor")
    j = j.clamp_min(0)
    on_stride = (j < counts) & (torch.div((2 * j + 1) * sizes, 2 * counts, rounding_mode="floor") == slots)
    return (~on_stride).to(dtype)


@register
@dataclass
class OmniSIFTNoTemporal(OmniSIFT):
    """OmniSIFT with the spatial rule on both grids of a group."""

    name = "omnisift-no-temporal"
    paper = "OmniSIFT ablation (no temporal pruning), arXiv 2602.04804"
    summary: ClassVar[str] = "ablation: OmniSIFT with the spatial rule on every grid (no temporal rule)"

    def video_redundancy(
        self, layout: Layout, flat_embeds: torch.Tensor, budget: Budget
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            grids, present, index = gather_grids(layout, flat_embeds)
            scores = spatial_cosine(layout, grids, torch.linalg.vector_norm(grids, dim=-1))
        return scores, present, index


@register
@dataclass
class OmniSIFTNoSpatial(OmniSIFT):
    """OmniSIFT with the temporal rule on every grid (first grids against the previous grid)."""

    name = "omnisift-no-spatial"
    paper = "OmniSIFT ablation (no spatial pruning), arXiv 2602.04804"
    summary: ClassVar[str] = (
        "ablation: OmniSIFT with the temporal rule on every grid (a video's first grid at a regular stride)"
    )

    def temporal_scores(self, layout: Layout, grids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """[G, P] drop priority: cosine to the previous grid's same patch (stride on a video's first grid)."""
        # Every grid against the same patch of the grid before it; for a second grid that is the group's
        # unpruned first grid, i.e. OmniSIFT's own temporal rule.
        previous = previous_grid_cosine(grids, torch.linalg.vector_norm(grids, dim=-1))
        comparable = ~layout.grid_video_start & layout.same_size_as_previous()
        return torch.where(comparable.unsqueeze(1), previous, stride_priority(layout, keep, grids.dtype))

    def video_redundancy(
        self, layout: Layout, flat_embeds: torch.Tensor, budget: Budget
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            grids, present, index = gather_grids(layout, flat_embeds)
            scores = self.temporal_scores(layout, grids, video_keep_per_grid(layout, budget.video_drop))
        return scores, present, index


@register
@dataclass
class OmniSIFTAudioOnly(OmniSIFT):
    """OmniSIFT whose selector uses the audio tokens as their own keys and values (no visual anchors)."""

    name = "omnisift-audio-only"
    paper = "OmniSIFT ablation (audio-only selector), arXiv 2602.04804"
    summary: ClassVar[str] = "ablation: OmniSIFT with the audio as its own keys/values in the selector"
    anchors_from_audio: ClassVar[bool] = True
