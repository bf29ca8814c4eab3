"""The module that trains: the stock model with compression attached, plus the selector.

`OmniSIFTTrainingModule` holds the loaded model (`.model`, a `Qwen2_5OmniForConditionalGeneration`
or its thinker) and the selector (`.compressor`) as submodules, so `accelerate` (DDP, DeepSpeed) sees
one module with every trainable parameter, and attaches compression to the model with that selector.
Its forward runs the thinker on a labelled batch: the attach hook compresses the merged inputs (in
train mode with grad enabled the kept audio rows carry the straight-through factor of value 1), the
labels are compressed with the same keep mask, and the loss is the shifted cross-entropy on the answer.

Recipes (`apply_recipe`):
- `selector`: only the selector trains; the LLM and the encoders are frozen.
- `full` (the paper's): selector + LLM (embeddings, decoder, lm_head) train; the vision encoder with
  its merger (the aligner) and the audio encoder (with its projection) are frozen.
The frozen encoders always run in eval mode; the language model follows `train()` (Qwen2.5-Omni has no
dropout there, and gradient checkpointing only acts in train mode).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ..attach import attach
from ..config import CompressionConfig
from ..models import find_adapter
from ..selector import VisionGuidedAudioSelector
from .loss import answer_loss, compress_labels

__all__ = [
    "RECIPES",
    "OmniSIFTTrainingModule",
    "apply_recipe",
    "check_model",
    "check_trainable",
    "trainable_parameters",
]

logger = logging.getLogger(__name__)

RECIPES = ("selector", "full")
_FLOAT_INPUTS = ("pixel_values_videos", "pixel_values", "input_features")


def check_model(model: nn.Module) -> Any:
    """The model's adapter; raises ValueError when it is not an omni model with video and audio inputs."""
    adapter = find_adapter(model)
    inner = adapter.thinker_model
    config = adapter.thinker.config
    missing = [
        name
        for name, module, sub in (
            ("vision encoder", getattr(inner, "visual", None), "vision_config"),
            ("audio encoder", getattr(inner, "audio_tower", None), "audio_config"),
        )
        if module is None or getattr(config, sub, None) is None
    ]
    if missing:
        raise ValueError(
            f"{type(model).__name__} has no {' and no '.join(missing)}: OmniSIFT training needs a model that takes "
            "video with its audio track (Qwen2.5-Omni)."
        )
    return adapter


def check_trainable(compression: CompressionConfig) -> None:
    """Training trains a selector: refuse methods that take none."""
    if not hasattr(compression.method, "selector"):
        raise ValueError(
            f"training trains a selector: method {compression.method_name!r} takes none (use omnisift or one of "
            "its ablations)."
        )


class OmniSIFTTrainingModule(nn.Module):
    """Model + selector with compression attached; `forward(batch)` returns the answer loss and stats."""

    def __init__(
        self,
        model: nn.Module,
        selector: VisionGuidedAudioSelector,
        compression: CompressionConfig | None = None,
    ) -> None:
        super().__init__()
        adapter = check_model(model)
        if selector.hidden_size != adapter.hidden_size:
            raise ValueError(
                f"the selector has hidden size {selector.hidden_size} but the model has {adapter.hidden_size}"
            )
        self.model = model
        self.compressor = selector
        compression = compression or CompressionConfig()
        check_trainable(compression)
        self.compression = compression.with_method(selector=selector)
        self._adapter = adapter
        self.handle = attach(model, self.compression)
        # attach casts the selector to the model's dtype; trainable weights stay fp32 (autocast computes in bf16).
        selector.float()

    @property
    def thinker(self) -> nn.Module:
        return self._adapter.thinker

    @property
    def encoders(self) -> tuple[nn.Module, nn.Module]:
        """The vision encoder (with its merger) and the audio encoder: frozen in both recipes."""
        inner = self._adapter.thinker_model
        return inner.visual, inner.audio_tower

    def train(self, mode: bool = True) -> OmniSIFTTrainingModule:
        super().train(mode)
        for encoder in self.encoders:
            encoder.eval()
        return self

    def detach_compression(self) -> None:
        """Remove the hooks (the model is the stock model again)."""
        self.handle.remove()

    def _inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        dtype = self._adapter.dtype
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "bad_samples")}
        for key in _FLOAT_INPUTS:
            value = inputs.get(key)
            if torch.is_tensor(value) and value.is_floating_point():
                inputs[key] = value.to(dtype)
        inputs["use_cache"] = False
        return inputs

    def compressed_hidden(
        self, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[float]]:
        """Run the thinker on `batch`: (last hidden state of the compressed batch, compressed labels or
        None without labels, achieved retention per sample)."""
        history = self.handle.history
        before = history[-1] if history else None
        self.handle.last_source_index = None
        out = self._adapter.thinker_model(**self._inputs(batch))
        call = history[-1] if history else None
        if call is None or call is before:
            raise ValueError(
                "the batch holds no video or audio tokens, so nothing was selected: every training row needs a "
                "video with its audio track"
            )
        labels = batch.get("labels")
        if labels is not None:
            labels = compress_labels(labels, self.handle.last_source_index)
        return out.last_hidden_state, labels, [s.retained for s in call.samples]

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        hidden, labels, retained = self.compressed_hidden(batch)
        if labels is None:
            raise ValueError("the batch has no labels")
        loss_sum, tokens = answer_loss(hidden, labels, self.thinker.lm_head)
        if not bool(tokens > 0):
            raise ValueError("the batch has no labelled answer token")
        return {
            "loss": loss_sum / tokens,
            "tokens": tokens,
            "retained": torch.tensor(retained, dtype=torch.float32, device=hidden.device),
        }


def apply_recipe(module: OmniSIFTTrainingModule, recipe: str) -> list[str]:
    """Freeze everything, then unfreeze what `recipe` trains; returns the trainable parameter names."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    module.requires_grad_(False)
    module.compressor.requires_grad_(True)
    if recipe == "full":
        thinker = module.thinker
        thinker.model.language_model.requires_grad_(True)
        thinker.lm_head.requires_grad_(True)
    return [name for name, _ in trainable_parameters(module)]


def trainable_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in module.named_parameters() if p.requires_grad]
