"""The compression settings every engine shares (transformers hooks, vLLM, lmms-eval, evaluation, training).

Lives below the engines so that none of them imports another to get its settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .api import resolve_method
from .budget import validate_drops
from .methods import SelectionMethod, method_settings

__all__ = ["CompressionConfig"]


@dataclass
class CompressionConfig:
    """What to compress and how much.

    Args:
        method: a registered method name (`omnisift methods` lists them) or a method instance, e.g.
            `OmniZip(knn=3)`. After creation this is always the instance.
        video_drop, audio_drop: fractions of video / audio tokens dropped, in [0, 1).
        retain: target fraction of each sample's audio+video tokens kept, in (0, 1]; overrides video_drop
            (see `omnisift.budget`).
        selector: shortcut for the `selector` setting of selector-based methods (omnisift and its
            ablations): a module, a selector `.safetensors` file, or a checkpoint folder holding
            `thinker.compressor.*` keys (the released OmniSIFT-7B).
        seed: shortcut for the `seed` setting of methods that draw at random (ignored by the others).
        method_params: any other setting of the method by name, e.g. `{"knn": 3}` for omnizip.

    The shortcuts are consumed into `method`; read settings from there (`config.method.selector`).
    """

    method: str | SelectionMethod = "omnisift"
    video_drop: float = 0.7
    audio_drop: float = 0.3
    retain: float | None = None
    selector: nn.Module | str | Path | None = None
    seed: int | None = None
    method_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_drops(self.video_drop, self.audio_drop, self.retain)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an int, got {self.seed!r}.")
        self.method = resolve_method(
            self.method, selector=self.selector, seed=self.seed, **dict(self.method_params)
        )
        self.selector, self.seed, self.method_params = None, None, {}

    def check(self) -> None:
        """Raise when the method cannot run at this budget (e.g. omnisift dropping audio without selector)."""
        self.method.check_budget(self.video_drop, self.audio_drop, self.retain)

    @property
    def method_name(self) -> str:
        return self.method.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: the method with all its settings and the budget (for run identity)."""
        return {
            "method": method_settings(self.method),
            "video_drop": self.video_drop,
            "audio_drop": self.audio_drop,
            "retain": self.retain,
        }

    def with_method(self, **settings: Any) -> CompressionConfig:
        """A copy whose method has these settings changed (e.g. `selector=path`)."""
        return dataclasses.replace(self, method=dataclasses.replace(self.method, **settings))
