"""Adapter for Qwen2.5-Omni in transformers 5.23: where to hook and what the model's facts are.

Everything is final at `thinker.model.language_model(...)`: the encoders' features are merged into
`inputs_embeds` and the M-RoPE ids are computed. `input_ids` are not passed there, so they are
captured by a pre-hook on `thinker.model`. `rope_deltas` (kept on `thinker.model`) is what a manual
decode with `position_ids=None` uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..layout import TokenIds

__all__ = ["Qwen25OmniAdapter", "stock_class_for"]


@dataclass
class Qwen25OmniAdapter:
    """The parts of a Qwen2.5-Omni model that compression touches."""

    model: nn.Module
    thinker: nn.Module
    talker: nn.Module | None

    family = "Qwen2.5-Omni"
    supported_classes = ("Qwen2_5OmniForConditionalGeneration", "Qwen2_5OmniThinkerForConditionalGeneration")

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return type(model).__name__ in cls.supported_classes

    @classmethod
    def wrap(cls, model: nn.Module) -> Qwen25OmniAdapter:
        if type(model).__name__ == "Qwen2_5OmniForConditionalGeneration":
            return cls(model=model, thinker=model.thinker, talker=getattr(model, "talker", None))
        return cls(model=model, thinker=model, talker=None)

    @property
    def thinker_model(self) -> nn.Module:
        """`Qwen2_5OmniThinkerModel`: merges features, computes positions, owns `rope_deltas`."""
        return self.thinker.model

    @property
    def language_model(self) -> nn.Module:
        return self.thinker.model.language_model

    @property
    def hidden_size(self) -> int:
        return int(self.thinker.config.text_config.hidden_size)

    @property
    def token_ids(self) -> TokenIds:
        return TokenIds.from_config(self.thinker.config)

    @property
    def audio_encoder(self) -> nn.Module:
        return self.thinker.model.audio_tower

    @property
    def device(self) -> torch.device:
        return next(self.thinker.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.embed_tokens.weight.dtype

    def set_rope_deltas(self, deltas: torch.Tensor) -> None:
        self.thinker.model.rope_deltas = deltas


def stock_class_for(path: str | Path) -> tuple[type, str]:
    """The stock transformers class that loads the checkpoint folder `path`, and its model_type.

    Fails with a clear message for a folder without config.json or of another model family.
    """
    import transformers

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} has no config.json; pass a Qwen2.5-Omni checkpoint folder or 'tiny'")
    model_type = json.loads(config_file.read_text()).get("model_type")
    classes = {
        "qwen2_5_omni": transformers.Qwen2_5OmniForConditionalGeneration,
        "qwen2_5_omni_thinker": transformers.Qwen2_5OmniThinkerForConditionalGeneration,
    }
    if model_type not in classes:
        raise ValueError(
            f"{path}: model_type {model_type!r} is not a Qwen2.5-Omni checkpoint (supported: {sorted(classes)})."
        )
    return classes[model_type], model_type
