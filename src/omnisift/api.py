"""Functional entry points: model inputs -> layout -> method -> keep mask (-> compressed inputs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .budget import Budget, resolve_budget, validate_drops
from .compress import Compressed, SampleStats, compress, sample_stats
from .layout import Layout, TokenIds, build_layout
from .methods import SelectionMethod, get_method

__all__ = ["SelectionResult", "select_tokens", "keep_mask", "compress_inputs"]


@dataclass
class SelectionResult:
    """Everything a selection produced for one batch."""

    keep: torch.Tensor
    inputs_embeds: torch.Tensor
    layout: Layout
    budget: Budget

    def stats(self) -> list[SampleStats]:
        return sample_stats(self.layout, self.keep)


def _validate(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    selector: nn.Module | None,
) -> None:
    if inputs_embeds.ndim != 3:
        raise ValueError(
            f"inputs_embeds must be [batch, seq_len, hidden], got shape {tuple(inputs_embeds.shape)}."
        )
    if input_ids.shape != inputs_embeds.shape[:2]:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and inputs_embeds {tuple(inputs_embeds.shape)} disagree on "
            "batch or sequence length."
        )
    if position_ids.ndim != 3 or position_ids.shape[0] != 3:
        raise ValueError(
            f"position_ids must be the 3-row M-RoPE ids [3, batch, seq_len] (t, h, w), got "
            f"{tuple(position_ids.shape)}; drop the leading text row generate carries (position_ids[1:])."
        )
    if position_ids.shape[1:] != input_ids.shape:
        raise ValueError(
            f"position_ids {tuple(position_ids.shape)} do not match input_ids {tuple(input_ids.shape)}."
        )
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}."
        )
    hidden = getattr(selector, "hidden_size", None)
    if hidden is not None and hidden != inputs_embeds.shape[-1]:
        raise ValueError(
            f"the selector expects hidden size {hidden} but the embeddings have {inputs_embeds.shape[-1]}: "
            "use a selector built or trained for this model."
        )


def select_tokens(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    method: str | SelectionMethod = "omnisift",
    selector: nn.Module | None = None,
    video_drop: float = 0.7,
    audio_drop: float = 0.3,
    retain: float | None = None,
    attention_mask: torch.Tensor | None = None,
    token_ids: TokenIds | None = None,
    seed: int = 0,
    audio_saliency: torch.Tensor | None = None,
) -> SelectionResult:
    """Run a selection method on a batch of merged LLM inputs (see `keep_mask` for the arguments)."""
    validate_drops(video_drop, audio_drop, retain)
    _validate(inputs_embeds, input_ids, position_ids, attention_mask, selector)
    impl = get_method(method) if isinstance(method, str) else method
    if impl.needs_selector and selector is None and (audio_drop > 0 or retain is not None):
        raise ValueError(
            f"method {impl.name!r} drops audio with a trained selector: pass selector=... (load_selector(path) "
            "or the OmniSIFT checkpoint folder), or set audio_drop=0 to prune video only."
        )
    layout = build_layout(input_ids, position_ids[0], attention_mask, token_ids)
    budget = resolve_budget(layout, video_drop, audio_drop, retain)
    selection = impl.select(
        layout, inputs_embeds, budget, selector=selector, seed=seed, audio_saliency=audio_saliency
    )
    return SelectionResult(selection.keep, selection.inputs_embeds, layout, budget)


def keep_mask(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    selector: nn.Module | None = None,
    video_drop: float = 0.7,
    audio_drop: float = 0.3,
    attention_mask: torch.Tensor | None = None,
    retain: float | None = None,
    method: str | SelectionMethod = "omnisift",
    token_ids: TokenIds | None = None,
    seed: int = 0,
    audio_saliency: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which tokens to keep: [B, N] bool, True = keep (text, special tokens, images and padding always).

    Args:
        inputs_embeds: [B, N, D] merged LLM input embeddings (after the encoders' features are scattered in).
        input_ids: [B, N] token ids.
        position_ids: [3, B, N] M-RoPE ids from `get_rope_index`.
        selector: the trained audio selector (required when audio is dropped).
        video_drop, audio_drop: fractions dropped, in [0, 1).
        attention_mask: [B, N], 0 on padding (left or right).
        retain: target fraction of each sample's audio+video tokens kept; overrides `video_drop` (and raises
            `audio_drop` only when video alone cannot reach it).
        method: a registered method name or instance.
        audio_saliency: [B, N] per-audio-token saliency for methods that use the audio encoder's attention
            (OmniZip); `attach` captures it from the encoder.
    """
    return select_tokens(
        inputs_embeds,
        input_ids,
        position_ids,
        method=method,
        selector=selector,
        video_drop=video_drop,
        audio_drop=audio_drop,
        retain=retain,
        attention_mask=attention_mask,
        token_ids=token_ids,
        seed=seed,
        audio_saliency=audio_saliency,
    ).keep


def compress_inputs(
    result: SelectionResult,
    position_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    input_ids: torch.Tensor | None = None,
    padding_side: str | None = None,
) -> Compressed:
    """Compress the batch a selection ran on (uses the selection's embeddings, e.g. with the STE factor)."""
    return compress(
        result.keep,
        result.inputs_embeds,
        position_ids,
        attention_mask,
        input_ids,
        padding_side=padding_side,
        layout=result.layout,
    )
