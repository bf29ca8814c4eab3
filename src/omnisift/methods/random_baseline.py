"""Random token dropping: the uniform baseline of the OmniSIFT paper (arXiv 2602.04804, Table 1, "Random").

Per modality and group, a uniform sample without replacement (docs/design.md#baselines):

- video: each grid keeps `budget.video_keep_per_grid` tokens drawn uniformly from the grid;
- audio: each group keeps `budget.audio_keep_per_group` of the audio tokens in its window, drawn uniformly.
  Audio outside every group window (a separate audio input, audio before the first grid) is never
  dropped, exactly as OmniSIFT does, so the counts are OmniSIFT's.

Choices the paper leaves open, made here:

- Randomness comes from one `torch.Generator` seeded with `seed`, on the CPU (the draws are the same on
  every device), video first, then audio. The same batch with the same seed gives the same mask; a
  sample's draw depends on the batch it is in (the generator runs over the whole batch at once).
- Kept tokens stay in their original order (a mask, not a permutation).

The same audio sampling (`shared.uniform_audio_keep`) serves the video-only baselines (DyCoke, VidCom2,
EVS), which apply `audio_drop` by seeded uniform sampling within each group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..budget import Budget, video_keep_per_grid
from ..layout import Layout
from .base import Selection, SelectionMethod, register
from .shared import (
    cpu_generator,
    drop_highest,
    keep_all,
    keep_from_parts,
    uniform_audio_keep,
    uniform_scores,
)

__all__ = ["RandomSelection"]


@register
@dataclass
class RandomSelection(SelectionMethod):
    """Uniform random keep per grid (video) and per group (audio), seeded."""

    name = "random"
    paper = "random baseline of OmniSIFT, arXiv 2602.04804"
    modalities = "audio+video"
    summary: ClassVar[str] = "uniform random keep per grid and per 2-s group, seeded and reproducible"

    seed: int = 0
    """Seed of the draws (video first, then audio)."""

    def select(self, layout: Layout, inputs_embeds: torch.Tensor, budget: Budget) -> Selection:
        generator = cpu_generator(self.seed)
        if layout.num_grids == 0:
            return keep_all(layout, inputs_embeds)
        index, present = layout.grid_index_matrix()
        scores = uniform_scores(tuple(present.shape), generator, layout.device)
        video_kept = drop_highest(scores, present, video_keep_per_grid(layout, budget.video_drop))
        audio_flat, audio_kept = uniform_audio_keep(layout, budget, self.seed)
        keep = keep_from_parts(layout, video_kept, index, audio_flat, audio_kept)
        return Selection(keep=keep, inputs_embeds=inputs_embeds)
