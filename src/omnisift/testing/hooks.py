"""What the stock thinker hands its language model, captured for tests that rebuild that call by hand."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["attached_then_removed", "language_model_inputs"]


def language_model_inputs(thinker: nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the thinker's language-model call for `inputs` (merged embeddings, 3-row
    positions, mask, and family extras such as DeepStack), run once with use_audio_in_video=True."""
    seen: dict[str, Any] = {}

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        seen.update(kwargs)

    hook = thinker.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            thinker(**inputs, use_audio_in_video=True)
    finally:
        hook.remove()
    return seen


def attached_then_removed(
    model: nn.Module, inputs: dict[str, Any], handle: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of `model` on `inputs` with `handle`'s compression attached, then after `handle.remove()`:
    the pair a test compares with the stock logits (removing must restore them)."""
    with torch.no_grad():
        attached = model(**inputs, use_audio_in_video=True).logits
    handle.remove()
    with torch.no_grad():
        after = model(**inputs, use_audio_in_video=True).logits
    return attached, after
