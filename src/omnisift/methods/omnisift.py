"""OmniSIFT (arXiv 2602.04804): spatio-temporal video pruning, then vision-guided audio selection.

STVP, per group of two grids (docs/design.md#selection-rules): the first grid drops its `floor(n * video_drop)` tokens
most cosine-similar to the grid's mean; the second grid (when as large as the first) drops the same
number of tokens most similar to the token at the same index of the unpruned first grid. A second
grid of another size is kept whole (the temporal rule needs index-aligned patches).

VGAS (docs/design.md#selection-rules): the group's surviving video tokens are the anchors; the selector scores the group's
audio against them and the top `La - floor(La * audio_drop)` are kept. During training the kept audio
is multiplied by a straight-through factor of value exactly 1 so the selector gets a gradient.

All grids and groups of the whole batch are handled in a few batched calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..budget import Budget
from ..layout import Layout
from .base import register
from .shared import SelectorMethod, stvp_scores

__all__ = ["OmniSIFT"]


@register
@dataclass
class OmniSIFT(SelectorMethod):
    """STVP video pruning, then the learned vision-guided audio selector."""

    name = "omnisift"
    paper = "OmniSIFT, arXiv 2602.04804"
    summary = (
        "STVP drops video redundant within and across frames; a trained selector keeps audio tied to them"
    )
    modalities = "audio+video"

    def video_redundancy(
        self, layout: Layout, flat_embeds: torch.Tensor, budget: Budget
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return stvp_scores(layout, flat_embeds)
