"""The benchmarks' inputs: synthetic clips laid out like the processor's and seeded random selectors."""

from __future__ import annotations

from typing import Any

import torch

from ..models.qwen2_5_omni.synthetic import SyntheticBatch, av_sample, build_batch
from ..selector import RANDOM_SELECTOR, source_selector

__all__ = ["HIDDEN_7B", "DTYPES", "make_selector", "make_clip", "clip_tokens", "cast_batch"]

HIDDEN_7B = 3584
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def make_selector(hidden: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A random selector (seed 0, global RNG untouched): timing does not depend on trained weights."""
    return source_selector(RANDOM_SELECTOR, hidden_size=hidden, seed=0, device=device, dtype=dtype).eval()


def make_clip(
    seconds: float, tokens_per_grid: int, hidden: int, dtype: torch.dtype, device: str = "cpu"
) -> SyntheticBatch:
    """One audio+video clip of `seconds` at 2 fps, batch 1."""
    return build_batch([av_sample(seconds, tokens_per_grid)], hidden, dtype=dtype, device=device)


def clip_tokens(seconds: float, tokens_per_grid: int) -> int:
    """Sequence length of `av_sample(seconds, tokens_per_grid)` at 2 fps (one grid per second)."""
    grids = max(1, round(seconds))
    return grids * tokens_per_grid + round(seconds * 25) + 2 * 16 + 4


def cast_batch(batch: Any, dtype: torch.dtype) -> SyntheticBatch:
    """The same clip with its embeddings in `dtype` (ids, positions and mask shared)."""
    return batch.with_embeds(batch.inputs_embeds.to(dtype))
