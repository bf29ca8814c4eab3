"""Model families behind one adapter contract (`models.base.ModelAdapter`), registered here by name."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .base import ModelAdapter, TinyModel, read_model_type
from .qwen2_5_omni import Qwen25OmniAdapter
from .qwen3_omni_moe import Qwen3OmniMoeAdapter

__all__ = [
    "ADAPTERS",
    "ModelAdapter",
    "TinyModel",
    "adapter_for_checkpoint",
    "adapter_for_tiny",
    "find_adapter",
    "tiny_names",
]

ADAPTERS: tuple[type[ModelAdapter], ...] = (Qwen25OmniAdapter, Qwen3OmniMoeAdapter)


def _supported() -> str:
    return ", ".join(name for a in ADAPTERS for name in a.supported_classes())


def find_adapter(model: nn.Module) -> ModelAdapter:
    """The adapter of `model`'s family, or a ValueError naming what is supported."""
    for adapter in ADAPTERS:
        if adapter.matches(model):
            return adapter(model)
    raise ValueError(
        f"omnisift does not support {type(model).__name__}; supported model classes: {_supported()}."
    )


def adapter_for_checkpoint(path: str | Path) -> type[ModelAdapter]:
    """The family that loads the checkpoint folder `path` (read from its config.json `model_type`)."""
    model_type = read_model_type(path)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    known = sorted(t for a in ADAPTERS for t in a.model_types)
    raise ValueError(f"{path}: model_type {model_type!r} is not supported (supported model types: {known}).")


def tiny_names() -> list[str]:
    return [name for a in ADAPTERS for name in a.tiny_names]


def adapter_for_tiny(name: str) -> type[ModelAdapter] | None:
    """The family whose fixture is called `name`, or None when `name` is not a fixture name."""
    for adapter in ADAPTERS:
        if name in adapter.tiny_names:
            return adapter
    return None
