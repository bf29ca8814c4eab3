"""Helpers of the method tests: run a selection on a synthetic batch, read its counts."""

from __future__ import annotations

import torch

from omnisift import select_tokens
from omnisift.inner import InnerLLMMethod
from omnisift.methods import METHODS, available_methods, takes_setting
from omnisift.models.qwen2_5_omni.synthetic import audio, av_clip, build_batch, image, text, video

HIDDEN = 32

ALL_METHODS = [m for m in available_methods() if not issubclass(METHODS[m], InnerLLMMethod)]
"""Methods that select before the LLM only (they keep exactly OmniSIFT's counts)."""
INNER_METHODS = [m for m in available_methods() if issubclass(METHODS[m], InnerLLMMethod)]
"""Methods that drop inside the LLM (their own layer-averaged budget; tests/inner covers the LLM part)."""


def mixed_batch(seed: int = 0, dtype: torch.dtype = torch.float32):
    """Clips of 4, 8 and 12 s (multiples of 4 grids, so DyCoke can reach 75 % drop), left padded,
    with text, an image, a separate audio input and a video without audio."""
    return build_batch(
        [
            [text(5), av_clip(8, 8, 8), text(4)],
            [text(3), image(2, 2), av_clip(4, 8, 8), text(2), audio(9), text(1)],
            [text(2), av_clip(12, 8, 8), text(3), video(4, 8, 8), text(2)],
        ],
        hidden_size=HIDDEN,
        seed=seed,
        dtype=dtype,
    )


def run(batch, method, selector=None, **kwargs):
    """select_tokens on a synthetic batch without autograd (the selector only for methods that take one)."""
    selector = selector if takes_setting(method, "selector") else None
    with torch.no_grad():
        return select_tokens(**batch.as_kwargs(), method=method, selector=selector, **kwargs)


def counts(result) -> list[tuple[int, int]]:
    """(video kept, audio kept) per sample."""
    return [(s.video_after, s.audio_after) for s in result.stats()]
