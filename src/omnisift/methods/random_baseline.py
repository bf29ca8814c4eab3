"""Random token dropping: the uniform baseline of the OmniSIFT paper (arXiv 2602.04804, Table 1, "Random").

Per modality and group, a uniform sample without replacement (SPEC 6):

- video: each grid keeps `budget.video_keep_per_grid` tokens drawn uniformly from the grid;
- audio: each group keeps `budget.audio_keep_per_group` of the audio tokens in its window, drawn uniformly.
  Audio outside every group window (a separate audio input, audio before the first grid) is never
  dropped, exactly as OmniSIFT does, so the counts are OmniSIFT's.

Choices the paper leaves open, made here:

- Randomness comes from one `torch.Generator` seeded with `seed`, on the CPU (the draws are the same on
  every device), video first, then audio. The same batch with the same seed gives the same mask; a
  sample's draw depends on the batch it is in (the generator runs over the whole batch at once).
- Kept tokens stay in their original order (a mask, not a permutation).

`uniform_audio_keep` is reused by the video-only baselines (DyCoke, VidCom2, EVS), which apply
`audio_drop` by seeded uniform sampling within each group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..budget import Budget, audio_keep_per_group, group_audio_sizes, video_keep_per_grid
from ..layout import Layout
from ..ops import top_per_group
from .base import Selection, SelectionMethod, register
from .omnisift import drop_highest, keep_from_parts

__all__ = ["RandomSelection", "uniform_audio_keep", "cpu_generator", "uniform_scores", "grid_presence"]

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


@register
@dataclass
class RandomSelection(SelectionMethod):
    """Uniform random keep per grid (video) and per group (audio), seeded."""

    name = "random"
    paper = "random baseline of OmniSIFT, arXiv 2602.04804"
    modalities = "audio+video"
    summary: ClassVar[str] = "uniform random keep per grid and per 2-s group, seeded and reproducible"

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
        generator = cpu_generator(seed)
        if layout.num_grids == 0:
            return Selection(keep=torch.ones_like(layout.valid), inputs_embeds=inputs_embeds)
        index, present = layout.grid_index_matrix()
        scores = uniform_scores(tuple(present.shape), generator, layout.device)
        video_kept = drop_highest(scores, present, video_keep_per_grid(layout, budget.video_drop))
        audio_flat, audio_kept = uniform_audio_keep(layout, budget, seed)
        keep = keep_from_parts(layout, video_kept, index, audio_flat, audio_kept)
        return Selection(keep=keep, inputs_embeds=inputs_embeds)
