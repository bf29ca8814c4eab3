"""Synthetic batches shared by every model family: the segment description, the batch and its padding.

Each family's `synthetic` module lays segments out as its processor and `get_rope_index` do; the types
are the same, so a test or benchmark written for one family runs on another.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..layout import TokenIds

__all__ = ["Segment", "SyntheticBatch", "pad_samples"]


@dataclass(frozen=True)
class Segment:
    """One part of a prompt: "text", "av" (a video with its audio track), "video", "audio" or "image".

    `audio_len` is the number of audio tokens; a family whose audio is described by mel frames
    (`mel_frames`, Qwen3-Omni) derives the token count from them when `audio_len` is 0.
    """

    kind: str
    length: int = 0
    grid_t: int = 0
    grid_h: int = 0
    grid_w: int = 0
    second_per_grid: float = 1.0
    audio_len: int = 0
    mel_frames: int = 0


@dataclass
class SyntheticBatch:
    """Merged inputs of a padded batch, the family's token ids, and what `get_rope_index` needs."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    inputs_embeds: torch.Tensor
    token_ids: TokenIds
    """The special token ids the batch was laid out with (pass them to `keep_mask` / `build_layout`)."""
    segments: list[list[Segment]] = field(default_factory=list)
    video_grid_thw: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    video_second_per_grid: torch.Tensor | None = None
    audio_seqlens: torch.Tensor | None = None
    """Mel frames of every audio (in order), what Qwen3-Omni's `get_rope_index` turns into token counts."""

    def as_kwargs(self) -> dict[str, Any]:
        """The arguments of `keep_mask` / `select_tokens`, token ids included."""
        return {
            "inputs_embeds": self.inputs_embeds,
            "input_ids": self.input_ids,
            "position_ids": self.position_ids,
            "attention_mask": self.attention_mask,
            "token_ids": self.token_ids,
        }

    def rope_kwargs(self) -> dict[str, torch.Tensor | None]:
        return {
            "image_grid_thw": self.image_grid_thw,
            "video_grid_thw": self.video_grid_thw,
            "attention_mask": self.attention_mask,
            "audio_seqlens": self.audio_seqlens,
            "second_per_grids": self.video_second_per_grid,
        }

    def with_embeds(self, inputs_embeds: torch.Tensor) -> SyntheticBatch:
        """The same batch with other embeddings (e.g. another dtype)."""
        return replace(self, inputs_embeds=inputs_embeds)


def pad_samples(
    built: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    pad_id: int,
    pad_position: float,
    padding_side: str = "left",
    position_dtype: torch.dtype = torch.long,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids [B, N], position_ids [3, B, N], attention_mask [B, N]) from each sample's ([n] tokens,
    [3, n] positions); padding gets `pad_id`, position `pad_position` and mask 0."""
    width = max(tokens.numel() for tokens, _ in built)
    batch = len(built)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    position_ids = torch.full((3, batch, width), pad_position, dtype=position_dtype)
    attention_mask = torch.zeros(batch, width, dtype=torch.long)
    for i, (tokens, positions) in enumerate(built):
        n = tokens.numel()
        where = slice(width - n, width) if padding_side == "left" else slice(0, n)
        input_ids[i, where] = tokens
        position_ids[:, i, where] = positions.to(position_dtype)
        attention_mask[i, where] = 1
    return input_ids, position_ids, attention_mask
