"""Helpers of the method tests: run a selection on a synthetic batch, read its counts."""

from __future__ import annotations

import torch

from omnisift import select_tokens
from omnisift.inner import InnerLLMMethod
from omnisift.methods import METHODS, available_methods, takes_setting

HIDDEN = 32

ALL_METHODS = [m for m in available_methods() if not issubclass(METHODS[m], InnerLLMMethod)]
"""Methods that select before the LLM only (they keep exactly OmniSIFT's counts)."""
INNER_METHODS = [m for m in available_methods() if issubclass(METHODS[m], InnerLLMMethod)]
"""Methods that drop inside the LLM (their own layer-averaged budget; tests/inner covers the LLM part)."""


def run(batch, method, selector=None, **kwargs):
    """select_tokens on a synthetic batch without autograd (the selector only for methods that take one)."""
    selector = selector if takes_setting(method, "selector") else None
    with torch.no_grad():
        return select_tokens(**batch.as_kwargs(), method=method, selector=selector, **kwargs)


def counts(result) -> list[tuple[int, int]]:
    """(video kept, audio kept) per sample."""
    return [(s.video_after, s.audio_after) for s in result.stats()]
