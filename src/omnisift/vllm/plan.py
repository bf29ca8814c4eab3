"""Budgets and selection for audio-visual blocks, through the core (layout, budget, methods).

vLLM sizes placeholders when the prompt is processed, before any pixel is encoded. Every layout-only
method keeps exactly the counts the budget gives per grid and per audio window, so the kept count of a
block follows from its layout and the drops alone. `prompt_drops` solves a `retain` target over the
blocks it is given; the thinker gives it one video at a time, so each video gets its own drops, at prompt
time and again inside the model, which gives the same counts (transformers solves once per sample, over
all its videos: the two differ on prompts with several videos). See docs/design.md#vllm.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..budget import Budget, audio_keep_per_group, group_audio_sizes, resolve_budget, video_keep_per_grid
from ..layout import Layout, TokenIds, build_layout
from ..methods import SelectionMethod
from .blocks import Block

__all__ = ["block_layout", "prompt_drops", "kept_count", "select_block"]

_SEPARATOR = -1
"""A token id that is neither video nor audio, so consecutive blocks form separate videos."""


def block_layout(blocks: Sequence[Block], token_ids: TokenIds) -> Layout:
    """A one-sample layout of the blocks in prompt order, separated by one non-media token."""
    ids, temporal = [], []
    offset = 0
    for block in blocks:
        ids += [block.input_ids(token_ids), torch.tensor([_SEPARATOR])]
        temporal += [torch.from_numpy(block.positions[0]) + offset, torch.tensor([offset + block.end])]
        offset += block.end + 1
    input_ids = torch.cat(ids).unsqueeze(0)
    return build_layout(input_ids, torch.cat(temporal).unsqueeze(0), None, token_ids)


def prompt_drops(
    blocks: Sequence[Block],
    video_drop: float,
    audio_drop: float,
    retain: float | None,
    token_ids: TokenIds,
) -> tuple[float, float]:
    """The (video_drop, audio_drop) of a prompt: the given ones, or those solved for `retain` over all blocks."""
    if retain is None or not blocks:
        resolve_budget(block_layout(blocks, token_ids), video_drop, audio_drop, None)  # validates
        return float(video_drop), float(audio_drop)
    budget = resolve_budget(block_layout(blocks, token_ids), video_drop, audio_drop, retain)
    return float(budget.video_drop[0]), float(budget.audio_drop[0])


def _fixed_budget(video_drop: float, audio_drop: float) -> Budget:
    return Budget(
        video_drop=torch.tensor([video_drop], dtype=torch.float64),
        audio_drop=torch.tensor([audio_drop], dtype=torch.float64),
    )


def kept_count(block: Block, video_drop: float, audio_drop: float, token_ids: TokenIds) -> int:
    """Media tokens the block keeps at these drops (every layout-only method keeps exactly these)."""
    layout = block_layout([block], token_ids)
    budget = _fixed_budget(video_drop, audio_drop)
    video = int(video_keep_per_grid(layout, budget.video_drop).sum())
    sizes = group_audio_sizes(layout)
    audio = int(audio_keep_per_group(layout, budget.audio_drop, sizes).sum())
    ungrouped = int((layout.audio_group < 0).sum())
    return video + audio + ungrouped


def select_block(
    method: SelectionMethod,
    block: Block,
    embeds: torch.Tensor,
    video_drop: float,
    audio_drop: float,
    token_ids: TokenIds,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kept rows of the block's [n, D] embeddings (in sequence order), their [3, k] relative ids and
    the [n] keep mask (to filter per-row inputs the method does not see, such as DeepStack features)."""
    if embeds.shape[0] != len(block):
        raise ValueError(
            f"the block has {len(block)} media tokens but {embeds.shape[0]} embeddings arrived: processor and "
            "model disagree on the video's grid, fps or audio length."
        )
    # Contiguous: the methods' batched scoring gives other selections on a strided view (seen with the
    # first D channels of Qwen3's wider video rows).
    embeds = embeds.contiguous()
    input_ids = block.input_ids(token_ids).unsqueeze(0)
    positions = torch.from_numpy(block.positions).unsqueeze(1)
    layout = build_layout(input_ids, positions[0], None, token_ids)
    selection = method.select(layout, embeds.unsqueeze(0), _fixed_budget(video_drop, audio_drop))
    keep = selection.keep[0].to(embeds.device)
    return selection.inputs_embeds[0][keep], positions[:, 0, keep.cpu()], keep
