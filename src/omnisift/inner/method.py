"""The contract of a method that drops tokens inside the LLM (SEATS, FastV, FastV-om).

Such a method is a `SelectionMethod` (its `select` is the pre-LLM part, possibly keeping everything) plus
a list of stages: each stage names the 0-based first decoder layer that runs on its reduced set, and
`stage_keep` decides, per sample, which current audio/video tokens stay (text always stays). The engine
(`omnisift.inner.runtime`) scores, gathers and trims the cache; the method only decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..methods.base import SelectionMethod
from .schedule import retention_pair

if TYPE_CHECKING:
    from ..models.base import ModelAdapter

__all__ = ["InnerLLMMethod", "StageTokens", "num_llm_layers"]


@dataclass
class StageTokens:
    """The current sequence at a stage: [B, S] bool masks over its slots, and the run's budget."""

    is_video: torch.Tensor
    is_audio: torch.Tensor
    valid: torch.Tensor
    pair: tuple[float, float]
    """Layer-averaged (video, audio) retention of the run."""
    num_layers: int


def num_llm_layers(adapter: ModelAdapter) -> int:
    return int(adapter.language_model.config.num_hidden_layers)


@dataclass
class InnerLLMMethod(SelectionMethod):
    """A method with drops inside the LLM. Subclasses set `video_retain` / `audio_retain` fields (an explicit
    layer-averaged pair) and implement `stages`, `scored` and `stage_keep`."""

    def retention(self, retain: float | None) -> tuple[float, float]:
        """The run's layer-averaged (video, audio) pair: the explicit fields, else SEATS' pair for `retain`
        (retain=1.0: everything, the stock model)."""
        if retain is not None and retain >= 1.0:
            return 1.0, 1.0
        return retention_pair(
            retain, getattr(self, "video_retain", None), getattr(self, "audio_retain", None)
        )

    def check_budget(self, video_drop: float, audio_drop: float, retain: float | None) -> None:
        if retain is not None and retain >= 1.0:
            return  # the stock model: nothing is dropped anywhere
        self.retention(retain)

    def stages(self) -> tuple[int, ...]:
        """0-based first layer of each stage's reduced set, increasing (valid after `prepare`)."""
        raise NotImplementedError

    def scored(self, stage: int) -> bool:
        """Whether stage `stage` needs the last text token's attention scores (False: rule without scores)."""
        return True

    def stage_keep(self, stage: int, scores: torch.Tensor | None, tokens: StageTokens) -> torch.Tensor:
        """[B, S] bool: the current audio/video tokens kept by stage `stage` (other slots are ignored)."""
        raise NotImplementedError

    @staticmethod
    def check_layers(name: str, layers: list[int], num_layers: int) -> None:
        if any(isinstance(x, bool) or not isinstance(x, int) for x in layers):
            raise ValueError(f"{name} must be integer layer indices, got {layers!r}.")
        if not layers or layers[0] < 1 or layers[-1] >= num_layers or layers != sorted(set(layers)):
            raise ValueError(
                f"{name}={layers} must be increasing 0-based layer indices in [1, {num_layers - 1}] for this "
                f"{num_layers}-layer LLM (each is the first layer that runs on a reduced set)."
            )
