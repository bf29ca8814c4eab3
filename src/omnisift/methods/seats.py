"""SEATS (arXiv 2605.20035): diverse selection before the LLM, progressive drops inside it, and no
audio/video at all from a late layer on. Rules read from the authors' release (xxayt/SEATS), rewritten.

Budget: `retain` R is layer-averaged and selects a (video, audio) pair (0.35 -> (0.30, 0.65), 0.25 ->
(0.20, 0.55), 0.15 -> (0.10, 0.45), 0.10 -> (0.06, 0.35)); or set `video_retain` and `audio_retain`.
The pre-LLM budget (`video_drop`, `audio_drop`) does not apply.

- Stage I (before the LLM, `select`): each modality keeps min(1, 1.4 r) of every 2-second window (video:
  the two grids of a group; audio: consecutive runs of `audio_window` tokens of one audio input) by
  greedy max-min diversity weighted by the encoders' attention (`omnisift.inner.diversity`). The
  attention statistic comes from the last block of each encoder, recorded while the model runs
  (`omnisift.inner.encoder_stats`); `video_attention` / `audio_attention` ([B, N], one value per token)
  may be given directly. Without either (e.g. `keep_mask` on synthetic inputs) every token weighs 1,
  logged once.
- Stage II (prefill only): before each of `drop_layers`, the tokens are scored by the last text token's
  attention and each modality keeps the schedule's ratio (`omnisift.inner.schedule.block_schedule`),
  shared between windows (the i-th video run with the i-th audio run) by softmax(mean score / 0.1).
- Stage III: from `late_layer` on, no audio or video token remains.

Defaults of `drop_layers` / `late_layer` are per model family and depth (the family adapter's
`inner_llm_layers`: Qwen2.5-Omni-7B [16, 18, 20] / 23, Qwen3-Omni-30B [27, 31, 35] / 39); other depths
(3B, tiny test models) need them set explicitly.

Choices SEATS leaves open or that this project changes: each sample uses its own video grids (SEATS
reads the first video's grid for all); any batch with padding (SEATS asserts batch 1); drop positions
and caches are gathered per sample, never from an unpruned `cache_position`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch

from ..budget import Budget
from ..inner.diversity import audio_input_rank, diverse_keep
from ..inner.encoder_stats import EncoderAttentionRecorder
from ..inner.method import InnerLLMMethod, StageTokens, num_llm_layers
from ..inner.rules import seats_window_keep
from ..inner.schedule import STAGE_ONE_SCALE, block_schedule
from ..layout import Layout
from .base import RUNTIME, Selection, register

if TYPE_CHECKING:
    from ..models.base import ModelAdapter

__all__ = ["SEATS"]

logger = logging.getLogger(__name__)
_uniform_logged = False


@register
@dataclass
class SEATS(InnerLLMMethod):
    name: ClassVar[str] = "seats"
    paper: ClassVar[str] = "SEATS (arXiv 2605.20035)"
    summary: ClassVar[str] = (
        "diverse pre-LLM selection, progressive drops inside the LLM, no audio/video after a late layer"
    )
    uses: ClassVar[str] = "training-free, encoder attention, inside the LLM"

    drop_layers: tuple[int, ...] | None = None
    """0-based first layer of each reduced set (3 layers); None: the family default for this depth."""
    late_layer: int | None = None
    """0-based first layer without audio/video; None: the family default for this depth."""
    video_retain: float | None = None
    audio_retain: float | None = None
    audio_window: int | None = None
    """Audio tokens of one Stage I window (2 s); None: 2 s at the family's audio token rate (50 on Qwen2.5)."""
    video_attention: torch.Tensor | None = field(default=None, repr=False, compare=False, metadata=RUNTIME)
    audio_attention: torch.Tensor | None = field(default=None, repr=False, compare=False, metadata=RUNTIME)

    def __post_init__(self) -> None:
        if self.drop_layers is not None:
            self.drop_layers = tuple(self.drop_layers)
            if len(self.drop_layers) != 3:
                raise ValueError(
                    f"seats: drop_layers must hold 3 layer indices, got {list(self.drop_layers)}."
                )
        if self.audio_window is not None and (
            isinstance(self.audio_window, bool) or int(self.audio_window) < 1
        ):
            raise ValueError(
                f"seats: audio_window must be a positive token count, got {self.audio_window!r}."
            )
        self._layers: tuple[tuple[int, ...], int] | None = None
        self._num_layers: int | None = None
        self._recorder: EncoderAttentionRecorder | None = None
        self._window = self.audio_window or 50

    # -- model state ----------------------------------------------------------------------------------

    def prepare(self, adapter: ModelAdapter) -> None:
        depth = num_llm_layers(adapter)
        defaults = adapter.inner_llm_layers.get(depth)
        drops, late = self.drop_layers, self.late_layer
        if drops is None or late is None:
            if defaults is None:
                raise ValueError(
                    f"seats: no default drop_layers/late_layer for a {depth}-layer {adapter.family} LLM (defaults "
                    f"exist for depths {sorted(adapter.inner_llm_layers) or 'none'}); set both, e.g. "
                    "--method-param drop_layers=[16,18,20] --method-param late_layer=23."
                )
            drops = drops if drops is not None else defaults[0]
            late = late if late is not None else defaults[1]
        self.check_layers("drop_layers + late_layer", [*drops, late], depth)
        self._layers, self._num_layers = (tuple(drops), int(late)), depth
        self._window = self.audio_window or round(2 * adapter.audio_tokens_per_second)
        self._recorder = EncoderAttentionRecorder.for_adapter(adapter)

    def release(self) -> None:
        if self._recorder is not None:
            self._recorder.remove()
            self._recorder = None

    # -- Stage I --------------------------------------------------------------------------------------

    def select(self, layout: Layout, inputs_embeds: torch.Tensor, budget: Budget) -> Selection:
        video_r, audio_r = self.retention(budget.retain)
        flat = inputs_embeds.reshape(-1, inputs_embeds.shape[-1])
        video_stat, audio_stat = self._statistics(layout)
        keep = torch.ones(layout.batch_size * layout.seq_len, dtype=torch.bool, device=layout.device)
        if layout.video_flat.numel():
            window = layout.grid_group[layout.video_grid]
            kept = diverse_keep(
                flat[layout.video_flat], video_stat, window, min(1.0, STAGE_ONE_SCALE * video_r)
            )
            keep[layout.video_flat] = kept
        if layout.audio_flat.numel():
            input_id, rank = audio_input_rank(layout)
            window = input_id * (layout.seq_len + 1) + torch.div(rank, self._window, rounding_mode="floor")
            kept = diverse_keep(
                flat[layout.audio_flat], audio_stat, window, min(1.0, STAGE_ONE_SCALE * audio_r)
            )
            keep[layout.audio_flat] = kept
        return Selection(keep.view(layout.batch_size, layout.seq_len), inputs_embeds)

    def _statistics(self, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention statistic of each video token (grid order) and audio token (sequence order)."""
        global _uniform_logged
        recorded = self._recorder.take(layout) if self._recorder is not None else (None, None)
        stats = []
        for given, from_model, flat in (
            (self.video_attention, recorded[0], layout.video_flat),
            (self.audio_attention, recorded[1], layout.audio_flat),
        ):
            if given is not None:
                if given.shape != layout.valid.shape:
                    raise ValueError(
                        f"seats: video_attention/audio_attention must be [batch, seq_len] = "
                        f"{tuple(layout.valid.shape)}, got {tuple(given.shape)}."
                    )
                stats.append(given.reshape(-1).to(layout.device)[flat].float())
            elif from_model is not None:
                stats.append(from_model.to(layout.device).reshape(-1)[flat].float())
            else:
                if flat.numel() and not _uniform_logged:
                    logger.warning(
                        "seats: no encoder attention recorded for these tokens (inputs built without the "
                        "encoders?); Stage I weighs every token 1"
                    )
                    _uniform_logged = True
                stats.append(torch.ones(flat.numel(), device=layout.device))
        return stats[0], stats[1]

    # -- Stages II and III ----------------------------------------------------------------------------

    def stages(self) -> tuple[int, ...]:
        if self._layers is None:
            raise RuntimeError("seats: prepare(adapter) resolves the layers before stages are asked for.")
        drops, late = self._layers
        return (*drops, late)

    def scored(self, stage: int) -> bool:
        return stage < 3

    def stage_keep(self, stage: int, scores: torch.Tensor | None, tokens: StageTokens) -> torch.Tensor:
        keep = torch.zeros_like(tokens.is_video)
        if stage >= 3:
            return keep
        drops, late = self._layers
        video_ratio = block_schedule(drops, late, tokens.num_layers, tokens.pair[0])[stage]
        audio_ratio = block_schedule(drops, late, tokens.num_layers, tokens.pair[1])[stage]
        for b in range(keep.shape[0]):
            keep[b] = seats_window_keep(
                scores[b], tokens.is_video[b], tokens.is_audio[b], video_ratio, audio_ratio
            )
        return keep
