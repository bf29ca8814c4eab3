"""The interface every token selection method implements, and the registry that names them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..budget import Budget
from ..layout import Layout

__all__ = ["Selection", "SelectionMethod", "register", "get_method", "available_methods", "METHODS"]


@dataclass
class Selection:
    """What a method decided for a batch.

    `keep` is [B, N] bool (True = keep; text, special tokens and padding are always True).
    `inputs_embeds` is the embeddings to compress: the input itself, or a tensor whose kept rows
    carry merged features or the straight-through factor.
    """

    keep: torch.Tensor
    inputs_embeds: torch.Tensor


@dataclass
class SelectionMethod(ABC):
    """A token selection method: given the layout and the merged embeddings, decide what to keep.

    Subclasses are dataclasses whose fields are the method's own hyper-parameters. They must keep,
    per sample, exactly the video and audio counts the budget gives (`budget.video_keep_per_grid`,
    `budget.audio_keep_per_group`), so that methods compare at equal token budgets.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    modalities: ClassVar[str] = "audio+video"
    needs_selector: ClassVar[bool] = False
    needs_audio_attention: ClassVar[bool] = False

    @abstractmethod
    def select(
        self,
        layout: Layout,
        inputs_embeds: torch.Tensor,
        budget: Budget,
        *,
        selector: nn.Module | None = None,
        seed: int = 0,
        audio_saliency: torch.Tensor | None = None,
    ) -> Selection:
        """Return the keep mask (and possibly new embeddings) for the batch."""


METHODS: dict[str, type[SelectionMethod]] = {}


def register(cls: type[SelectionMethod]) -> type[SelectionMethod]:
    """Class decorator adding a method to the registry under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered.")
    METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    return sorted(METHODS)


def get_method(name: str, **params: object) -> SelectionMethod:
    """Instantiate a registered method by name."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available_methods())}.")
    return METHODS[name](**params)
