"""Apply a keep mask: a compact batch of the kept tokens, with their original position ids.

Kept lengths differ between samples, so the output is re-padded on the input's padding side; padding
slots get zero embeddings, position id 1 (what `get_rope_index` gives padding) and attention mask 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .layout import Layout

__all__ = ["SampleStats", "Compressed", "compress", "sample_stats", "infer_padding_side"]


@dataclass(frozen=True)
class SampleStats:
    """Token counts of one sample before and after selection."""

    video_before: int
    video_after: int
    audio_before: int
    audio_after: int
    length_before: int
    length_after: int
    layer_avg_kept_video: float | None = None
    """Fraction of the video tokens present, averaged over the LLM's layers (None where not computed)."""
    layer_avg_kept_audio: float | None = None
    prefill_flops_ratio: float | None = None
    """LLM prefill FLOPs relative to the full-token run (docs/design.md gives the convention)."""

    @property
    def retained(self) -> float:
        """Fraction of the sample's audio + video tokens kept (1.0 when it has none)."""
        before = self.video_before + self.audio_before
        return (self.video_after + self.audio_after) / before if before else 1.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "retained": self.retained}


@dataclass
class Compressed:
    """The compact batch and where each of its slots came from."""

    inputs_embeds: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    input_ids: torch.Tensor | None
    source_index: torch.Tensor
    """[B, K] index in the input sequence of each slot, -1 on padding."""
    stats: list[SampleStats]


def infer_padding_side(attention_mask: torch.Tensor | None) -> str:
    """'right' only when some row ends with padding and none starts with it; 'left' otherwise."""
    if attention_mask is None:
        return "left"
    starts_padded = bool((attention_mask[:, 0] == 0).any())
    ends_padded = bool((attention_mask[:, -1] == 0).any())
    return "right" if ends_padded and not starts_padded else "left"


def sample_stats(layout: Layout, keep: torch.Tensor) -> list[SampleStats]:
    """Per-sample counts, fetched from the device in one transfer."""
    kept = keep & layout.valid
    counts = torch.stack(
        [
            layout.is_video.sum(1),
            (layout.is_video & kept).sum(1),
            layout.is_audio.sum(1),
            (layout.is_audio & kept).sum(1),
            layout.valid.sum(1),
            kept.sum(1),
        ],
        dim=1,
    ).tolist()
    return [SampleStats(*row) for row in counts]


def compress(
    keep: torch.Tensor,
    inputs_embeds: torch.Tensor,
    position_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    input_ids: torch.Tensor | None = None,
    *,
    padding_side: str | None = None,
    pad_token_id: int = 0,
    layout: Layout | None = None,
) -> Compressed:
    """Gather the kept tokens of every sample into a compact batch.

    Args:
        keep: [B, N] bool, True = keep.
        inputs_embeds: [B, N, D].
        position_ids: [R, B, N] M-RoPE ids (3 rows, or 4 with the text row that generate carries).
        attention_mask: [B, N] or None (no padding).
        input_ids: [B, N], compressed too when given.
        padding_side: "left" or "right"; inferred from the mask when None.
        layout: when given, per-sample stats by modality are computed.
    """
    batch, seq_len = keep.shape
    if inputs_embeds.shape[:2] != (batch, seq_len):
        raise ValueError(
            f"inputs_embeds {tuple(inputs_embeds.shape)} does not match keep mask {tuple(keep.shape)}."
        )
    if position_ids.ndim != 3 or position_ids.shape[1:] != (batch, seq_len):
        raise ValueError(
            f"position_ids must be [rows, {batch}, {seq_len}] (M-RoPE t/h/w rows), got {tuple(position_ids.shape)}."
        )
    side = padding_side or infer_padding_side(attention_mask)
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}.")
    device = keep.device
    valid = attention_mask.bool() if attention_mask is not None else torch.ones_like(keep)
    kept = keep & valid
    counts = kept.sum(1)
    width = int(counts.max()) if batch else 0
    slot = torch.cumsum(kept, 1) - 1
    if side == "left":
        slot = slot + (width - counts).unsqueeze(1)
    src = torch.nonzero(kept.reshape(-1)).squeeze(1)
    dest = (src // seq_len) * width + slot.reshape(-1)[src]

    hidden = inputs_embeds.shape[-1]
    out_embeds = inputs_embeds.new_zeros(batch * width, hidden)
    out_embeds[dest] = inputs_embeds.reshape(-1, hidden)[src]
    rows = position_ids.shape[0]
    out_pos = position_ids.new_ones(rows, batch * width)
    out_pos[:, dest] = position_ids.reshape(rows, -1)[:, src]
    out_mask = torch.zeros(batch * width, dtype=torch.long, device=device)
    out_mask[dest] = 1
    source = torch.full((batch * width,), -1, dtype=torch.long, device=device)
    source[dest] = src % seq_len
    out_ids = None
    if input_ids is not None:
        out_ids = input_ids.new_full((batch * width,), pad_token_id)
        out_ids[dest] = input_ids.reshape(-1)[src]
        out_ids = out_ids.view(batch, width)
    if attention_mask is not None:
        out_mask = out_mask.to(attention_mask.dtype)
    return Compressed(
        inputs_embeds=out_embeds.view(batch, width, hidden),
        position_ids=out_pos.view(rows, batch, width),
        attention_mask=out_mask.view(batch, width),
        input_ids=out_ids,
        source_index=source.view(batch, width),
        stats=sample_stats(layout, keep) if layout is not None else [],
    )
