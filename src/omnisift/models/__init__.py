"""One adapter per supported model family; `find_adapter` picks the one that fits a model."""

from __future__ import annotations

from torch import nn

from .qwen2_5_omni import Qwen25OmniAdapter

__all__ = ["ADAPTERS", "Qwen25OmniAdapter", "find_adapter"]

ADAPTERS = (Qwen25OmniAdapter,)


def find_adapter(model: nn.Module) -> Qwen25OmniAdapter:
    """The adapter of `model`'s family, or a ValueError naming what is supported."""
    for adapter in ADAPTERS:
        if adapter.matches(model):
            return adapter.wrap(model)
    supported = ", ".join(name for a in ADAPTERS for name in a.supported_classes)
    raise ValueError(
        f"omnisift does not support {type(model).__name__}; supported model classes: {supported}."
    )
