"""FastV (arXiv 2403.06764) and FastV-om, as SEATS (arXiv 2605.20035) runs them on omni models: one drop
inside the LLM, scored by the last text token's attention.

The first `k` layers run on every token; from layer `k` on (0-based) only the kept audio/video tokens
remain. The budget is layer-averaged, as SEATS states it: `retain` R selects SEATS' (video, audio) pair
(or set `video_retain` / `audio_retain`), and a modality kept at layer-averaged r keeps
(r L - k) / (L - k) of its tokens at the drop (at least one token; SEATS keeps one when that is <= 0).

- `fastv`: first the budget moves to video's disadvantage, as in SEATS: the total r_v N_v + r_a N_a is
  kept, audio gets all its tokens and video the rest, down to a floor of 5 % of video, below which audio
  gives tokens back. Video keeps its top-scored tokens; audio, when it must lose some, loses a uniform
  random draw (SEATS draws with an unseeded generator; here `seed` makes it reproducible and independent
  of the batch).
- `fastv-om`: audio and video together keep their top-scored tokens of one global ranking, at the
  combined layer-averaged budget (r_v N_v + r_a N_a) / (N_v + N_a).

Nothing is dropped before the LLM. The pre-LLM budget (`video_drop`, `audio_drop`) does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from ..budget import Budget
from ..inner.method import InnerLLMMethod, StageTokens, num_llm_layers
from ..inner.rules import keep_count, seeded_draw, top_k_keep
from ..inner.schedule import fastv_ratio, reallocate_to_audio
from ..layout import Layout
from .base import Selection, register

if TYPE_CHECKING:
    from ..models.base import ModelAdapter

__all__ = ["FastV", "FastVOmni"]


@dataclass
class _OneDrop(InnerLLMMethod):
    uses: ClassVar[str] = "training-free, inside the LLM"

    k: int = 2
    """0-based first layer that runs on the reduced set (FastV's K)."""
    video_retain: float | None = None
    audio_retain: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"{self.name}: k must be an integer >= 1 (first reduced layer), got {self.k!r}.")
        self._num_layers: int | None = None

    def prepare(self, adapter: ModelAdapter) -> None:
        self._num_layers = num_llm_layers(adapter)
        self.check_layers("k", [self.k], self._num_layers)

    def stages(self) -> tuple[int, ...]:
        return (self.k,)

    def select(self, layout: Layout, inputs_embeds: torch.Tensor, budget: Budget) -> Selection:
        keep = torch.ones(layout.batch_size, layout.seq_len, dtype=torch.bool, device=inputs_embeds.device)
        return Selection(keep, inputs_embeds)


@register
@dataclass
class FastV(_OneDrop):
    name: ClassVar[str] = "fastv"
    paper: ClassVar[str] = "FastV (arXiv 2403.06764), omni variant as in SEATS (arXiv 2605.20035)"
    summary: ClassVar[str] = "one drop after layer k: video by last-text-token attention, audio kept"
    modalities: ClassVar[str] = "video"
    """Audio is dropped only when the budget forces it, by a seeded uniform draw."""

    seed: int = 0
    """Seed of the audio draw when the budget forces audio drops."""

    def stage_keep(self, stage: int, scores: torch.Tensor | None, tokens: StageTokens) -> torch.Tensor:
        keep = torch.zeros_like(tokens.is_video)
        for b in range(keep.shape[0]):
            n_video, n_audio = int(tokens.is_video[b].sum()), int(tokens.is_audio[b].sum())
            video_r, audio_r = reallocate_to_audio(*tokens.pair, n_video, n_audio)
            at_drop = fastv_ratio(video_r, tokens.num_layers, self.k)
            videos = torch.nonzero(tokens.is_video[b]).squeeze(1)
            keep[b] |= top_k_keep(scores[b], videos, keep_count(at_drop, n_video))
            audios = torch.nonzero(tokens.is_audio[b]).squeeze(1)
            if audio_r >= 1.0:
                keep[b, audios] = True
            else:
                count = keep_count(fastv_ratio(audio_r, tokens.num_layers, self.k), n_audio)
                keep[b] |= seeded_draw(audios, count, self.seed, keep.shape[1])
        return keep


@register
@dataclass
class FastVOmni(_OneDrop):
    name: ClassVar[str] = "fastv-om"
    paper: ClassVar[str] = "FastV (arXiv 2403.06764) over audio and video, as in SEATS (arXiv 2605.20035)"
    summary: ClassVar[str] = (
        "one drop after layer k: audio and video by one last-text-token attention ranking"
    )

    def stage_keep(self, stage: int, scores: torch.Tensor | None, tokens: StageTokens) -> torch.Tensor:
        keep = torch.zeros_like(tokens.is_video)
        video_r, audio_r = tokens.pair
        media = tokens.is_video | tokens.is_audio
        for b in range(keep.shape[0]):
            n_video, n_audio = int(tokens.is_video[b].sum()), int(tokens.is_audio[b].sum())
            count = n_video + n_audio
            if count == 0:
                continue
            combined = (video_r * n_video + audio_r * n_audio) / count
            at_drop = fastv_ratio(combined, tokens.num_layers, self.k)
            keep[b] = top_k_keep(scores[b], torch.nonzero(media[b]).squeeze(1), keep_count(at_drop, count))
        return keep
