"""Functional entry points: model inputs -> layout -> method -> keep mask (-> compressed inputs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .budget import Budget, BudgetSettings, solve_budget
from .compress import Compressed, SampleStats, compress, sample_stats
from .config import DEFAULT_AUDIO_DROP, DEFAULT_METHOD, DEFAULT_RETAIN, DEFAULT_VIDEO_DROP, CompressionConfig
from .layout import Layout, TokenIds, build_layout, require_token_ids
from .methods import SelectionMethod
from .methods.base import resolve_method
from .models import ModelAdapter, find_adapter

__all__ = [
    "SelectionResult",
    "select_tokens",
    "select_with",
    "keep_mask",
    "compress_inputs",
    "resolve_method",
]


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


def select_tokens(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    method: str | SelectionMethod = DEFAULT_METHOD,
    video_drop: float = DEFAULT_VIDEO_DROP,
    audio_drop: float = DEFAULT_AUDIO_DROP,
    retain: float | None = DEFAULT_RETAIN,
    attention_mask: torch.Tensor | None = None,
    token_ids: TokenIds | None = None,
    model: nn.Module | ModelAdapter | None = None,
    selector: nn.Module | str | Path | None = None,
    seed: int | None = None,
    **method_params: object,
) -> SelectionResult:
    """Run a selection method on a batch of merged LLM inputs (see `keep_mask` for the arguments)."""
    token_ids = family_token_ids(token_ids, model, "select_tokens")
    config = CompressionConfig(
        method=method,
        video_drop=video_drop,
        audio_drop=audio_drop,
        retain=retain,
        selector=selector,
        seed=seed,
        method_params=method_params,
    )
    config.check()
    return select_with(
        config.method,
        config.budget_settings,
        inputs_embeds,
        input_ids,
        position_ids,
        attention_mask,
        token_ids,
    )


def family_token_ids(
    token_ids: TokenIds | None, model: nn.Module | ModelAdapter | None, caller: str
) -> TokenIds:
    """The given ids, else the model's family's; refuses when neither is given."""
    if token_ids is None and model is not None:
        adapter = model if isinstance(model, ModelAdapter) else find_adapter(model)
        token_ids = adapter.token_ids
    return require_token_ids(token_ids, caller)


def select_with(
    method: SelectionMethod,
    budget: BudgetSettings,
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    token_ids: TokenIds | None,
) -> SelectionResult:
    """Run an already built method at an already checked budget (the per-call path of engines)."""
    _validate(inputs_embeds, input_ids, position_ids, attention_mask)
    layout = build_layout(input_ids, position_ids[0], attention_mask, token_ids)
    per_sample = solve_budget(layout, budget)
    selection = method.select(layout, inputs_embeds, per_sample)
    return SelectionResult(selection.keep, selection.inputs_embeds, layout, per_sample)


def keep_mask(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    selector: nn.Module | str | Path | None = None,
    video_drop: float = DEFAULT_VIDEO_DROP,
    audio_drop: float = DEFAULT_AUDIO_DROP,
    attention_mask: torch.Tensor | None = None,
    retain: float | None = DEFAULT_RETAIN,
    method: str | SelectionMethod = DEFAULT_METHOD,
    token_ids: TokenIds | None = None,
    model: nn.Module | ModelAdapter | None = None,
    seed: int | None = None,
    **method_params: object,
) -> torch.Tensor:
    """Which tokens to keep: [B, N] bool, True = keep (text, special tokens, images and padding always).

    Args:
        inputs_embeds: [B, N, D] merged LLM input embeddings (after the encoders' features are scattered in).
        input_ids: [B, N] token ids.
        position_ids: [3, B, N] M-RoPE ids from `get_rope_index` (t row integer or float).
        selector: the trained audio selector of selector-based methods (required when they drop audio).
        video_drop, audio_drop: fractions dropped, in [0, 1).
        attention_mask: [B, N], 0 on padding (left or right).
        retain: target fraction of each sample's audio+video tokens kept; overrides `video_drop` (and raises
            `audio_drop` only when video alone cannot reach it).
        method: a registered method name or instance (`omnisift methods` lists them).
        token_ids: the model family's special token ids (`find_adapter(model).token_ids`).
        model: the model (or its adapter) the inputs are for, instead of `token_ids`. One of the two is
            required: the families' ids differ, so none is assumed.
        seed: seed of methods that draw at random (ignored by the others).
        method_params: the method's own settings by name (e.g. `knn=3` for omnizip).
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
        model=model,
        seed=seed,
        **method_params,
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
