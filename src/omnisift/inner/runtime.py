"""Run an inner-LLM method's drops with hooks on the stock decoder layers (no fork).

The language model's loop hands every layer the same mask, rotary tables and text positions, built
for the sequence it received. A forward pre-hook on each decoder layer substitutes the current ones:
at a stage's first layer it scores the tokens, asks the method which audio/video tokens stay, gathers
hidden states, the 3 position rows, rotary tables, text positions and the source index into a compact
left-padded batch (per-sample keep counts), trims the KV cache of every earlier layer to the same
tokens (so every layer's cache has one length), rebuilds the mask for the compact batch with the
model's own mask builder, and filters pending DeepStack inputs. A forward hook on the language model
then publishes the result: the decode bookkeeping of `attach` (compact mask, dropped count), the
`rope_deltas` of a manual decode, per-sample kept positions per stage and layer accounting.

Only prefills that `attach` handed over (a media prefill with something to drop) are touched; decode
steps, text-only calls and calls with nothing to drop pass through every hook unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ..compress import SampleStats
from .accounting import LLMDims, layer_average, prefill_flops_ratio
from .method import InnerLLMMethod, StageTokens, num_llm_layers
from .scoring import last_text_attention

__all__ = ["InnerRuntime", "PrefillStart", "source_positions"]


@dataclass
class PrefillStart:
    """What `attach` hands over at a compressed prefill (after its pre-LLM selection and compaction)."""

    source: torch.Tensor
    """[B, S] index in the input_ids row of each slot, -1 on padding."""
    is_video: torch.Tensor
    is_audio: torch.Tensor
    positions: torch.Tensor
    """[3, B, S] M-RoPE ids of the compact batch."""
    mask: torch.Tensor
    """[B, S] compact 2D attention mask (1 = token)."""
    pair: tuple[float, float]
    samples: list[SampleStats]
    """The call's stats (updated in place when the prefill ends)."""
    publish: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, list[dict[int, torch.Tensor]]], None]
    """Called with the final 2D mask, 3-row positions, source index and kept positions per sample."""
    deepstack: tuple[torch.Tensor, list[torch.Tensor]] | None = None


@dataclass
class _State:
    start: PrefillStart
    source: torch.Tensor
    is_video: torch.Tensor
    is_audio: torch.Tensor
    valid: torch.Tensor
    positions: torch.Tensor
    stage: int = 0
    replaced: bool = False
    cos_sin: tuple[torch.Tensor, torch.Tensor] | None = None
    text_positions: torch.Tensor | None = None
    mask: Any = None
    stage_sources: dict[int, torch.Tensor] = field(default_factory=dict)
    counts: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    """(first layer, [B, 3] video / audio / valid counts) of each stage including the LLM input."""


def source_positions(source: torch.Tensor) -> list[torch.Tensor]:
    """Per sample, the input_ids positions still present (sorted), from a [B, S] source index."""
    return [row[row >= 0].sort().values for row in source.cpu()]


def _gather_index(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, S'] left-padded slot index of each sample's kept slots (0 on padding) and the [B, S'] presence mask."""
    counts = keep.sum(1)
    width = int(counts.max())
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]
    rank = torch.arange(width, device=keep.device).unsqueeze(0) - (width - counts).unsqueeze(1)
    present = rank >= 0
    return torch.where(present, order.gather(1, rank.clamp(min=0)), 0), present


def _take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather the [B, S'] slots `index` along dim 1 of a [B, S, ...] tensor."""
    shape = (*index.shape, *([1] * (tensor.ndim - 2)))
    return tensor.gather(1, index.view(shape).expand(*index.shape, *tensor.shape[2:]))


class InnerRuntime:
    """The layer hooks of one attachment of an inner-LLM method."""

    def __init__(self, language_model: nn.Module, method: InnerLLMMethod, adapter: Any) -> None:
        self.language_model = language_model
        self.method = method
        self.layers = list(language_model.layers)
        self.stage_layers = method.stages()
        self.num_layers = num_llm_layers(adapter)
        self.dims = LLMDims.from_config(language_model.config)
        layer_types = getattr(language_model.config, "layer_types", None) or []
        if any(kind != "full_attention" for kind in layer_types):
            raise ValueError(
                f"omnisift: {method.name} drops tokens inside the LLM, which supports full-attention layers only; "
                f"this model has layer types {sorted(set(layer_types))}."
            )
        self._local = threading.local()
        self.hooks = [
            layer.register_forward_pre_hook(self._make_pre_hook(i), with_kwargs=True)
            for i, layer in enumerate(self.layers)
        ]
        self.hooks.append(language_model.register_forward_hook(self._on_done, with_kwargs=True))

    # -- call lifecycle -------------------------------------------------------------------------------

    def begin(self, start: PrefillStart) -> None:
        """Arm the hooks for the language-model call that follows (this thread only)."""
        valid = start.mask.bool()
        state = _State(
            start=start,
            source=start.source,
            is_video=start.is_video & valid,
            is_audio=start.is_audio & valid,
            valid=valid,
            positions=start.positions,
        )
        state.stage_sources[0] = start.source
        state.counts.append((0, self._counts(state)))
        self._local.state = state

    def cancel(self) -> None:
        self._local.state = None

    @staticmethod
    def _counts(state: _State) -> torch.Tensor:
        return torch.stack([state.is_video.sum(1), state.is_audio.sum(1), state.valid.sum(1)], 1)

    def _make_pre_hook(self, index: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
            state = getattr(self._local, "state", None)
            if state is None:
                return None
            hidden = args[0] if args else kwargs.pop("hidden_states")
            args = args[1:] if args else ()
            stage = state.stage
            if stage < len(self.stage_layers) and self.stage_layers[stage] == index:
                hidden = self._drop(state, index, hidden, kwargs)
            if not state.replaced:
                return (hidden, *args), kwargs
            kwargs["attention_mask"] = state.mask
            kwargs["position_embeddings"] = state.cos_sin
            if kwargs.get("position_ids") is not None:
                kwargs["position_ids"] = state.text_positions
            return (hidden, *args), kwargs

        return hook

    # -- one drop -------------------------------------------------------------------------------------

    def _drop(self, state: _State, index: int, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
        stage = state.stage
        state.stage += 1
        cos, sin = state.cos_sin if state.replaced else kwargs["position_embeddings"]
        media = state.is_video | state.is_audio
        scores = None
        if self.method.scored(stage):
            scores = last_text_attention(self.layers[index - 1], hidden, cos, sin, state.valid, media)
        tokens = StageTokens(state.is_video, state.is_audio, state.valid, state.start.pair, self.num_layers)
        keep_media = self.method.stage_keep(stage, scores, tokens) & media
        keep = (state.valid & ~media) | keep_media
        gather, present = _gather_index(keep)

        text_positions = state.text_positions if state.replaced else kwargs.get("position_ids")
        hidden = _take(hidden, gather) * present.unsqueeze(-1).to(hidden.dtype)
        state.cos_sin = (_take(cos, gather), _take(sin, gather))
        if text_positions is not None:
            state.text_positions = _take(text_positions, gather)
        state.positions = torch.stack([_take(row, gather) for row in state.positions])
        state.source = torch.where(present, _take(state.source, gather), -1)
        state.is_video = _take(state.is_video, gather) & present
        state.is_audio = _take(state.is_audio, gather) & present
        state.valid = present
        self._trim_cache(kwargs.get("past_key_values"), index, gather, keep.shape[1])
        self._filter_deepstack(state, index, keep, gather, present)
        state.mask = self._mask(hidden, present)
        state.replaced = True
        state.stage_sources[index] = state.source
        state.counts.append((index, self._counts(state)))
        return hidden

    @staticmethod
    def _trim_cache(cache: Any, index: int, gather: torch.Tensor, length: int) -> None:
        """Keep the gathered slots in the cache of layers 0 .. index - 1."""
        if cache is None:
            return
        layers = getattr(cache, "layers", None)
        if layers is None:
            raise RuntimeError(
                f"omnisift: cannot trim a {type(cache).__name__}; use the default DynamicCache."
            )
        for layer_index in range(index):
            layer = layers[layer_index]
            if layer.keys is None or layer.keys.shape[-2] != length:
                held = None if layer.keys is None else layer.keys.shape[-2]
                raise RuntimeError(
                    f"omnisift: layer {layer_index}'s cache holds {held} tokens where {length} were expected at an "
                    "inner-LLM drop (a cache that was not empty, or one that drops tokens itself); start from an "
                    "empty DynamicCache."
                )
            layer_gather = gather.unsqueeze(1).unsqueeze(-1)
            layer.keys = layer.keys.gather(
                2, layer_gather.expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1])
            )
            layer.values = layer.values.gather(
                2, layer_gather.expand(-1, layer.values.shape[1], -1, layer.values.shape[-1])
            )

    def _mask(self, hidden: torch.Tensor, present: torch.Tensor) -> Any:
        """The mask the model would build for a prefill of the compact batch (its own builder)."""
        from transformers.masking_utils import create_causal_mask  # here: keeps `import omnisift` light

        return create_causal_mask(
            config=self.language_model.config,
            inputs_embeds=hidden,
            attention_mask=present.long(),
            past_key_values=None,
        )

    @staticmethod
    def _filter_deepstack(
        state: _State, index: int, keep: torch.Tensor, gather: torch.Tensor, present: torch.Tensor
    ) -> None:
        """Filter DeepStack inputs still to be added (after layers >= index) with this drop's keep mask.

        The language model's loop holds the mask tensor and the list themselves, so both are changed in place
        (they are this call's own copies, made by `attach`)."""
        deepstack = state.start.deepstack
        if deepstack is None:
            return
        visual, features = deepstack
        if len(features) <= index:
            return
        kept_visual = keep[visual.bool()]
        new_visual = _take(visual.bool(), gather) & present
        visual.set_(new_visual.to(visual.dtype))
        for i in range(index, len(features)):
            features[i] = features[i][kept_visual.to(features[i].device)]

    # -- end of the prefill ---------------------------------------------------------------------------

    def _on_done(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        state = getattr(self._local, "state", None)
        self._local.state = None
        if state is None:
            return
        per_sample = [
            {layer: source_positions(src)[b] for layer, src in state.stage_sources.items()}
            for b in range(state.source.shape[0])
        ]
        state.start.publish(state.valid.long(), state.positions, state.source, per_sample)
        self._account(state)

    def _account(self, state: _State) -> None:
        """Layer averages and relative FLOPs of each sample, written into the call's stats."""
        bounds = [layer for layer, _ in state.counts] + [self.num_layers]
        per_stage = torch.stack([counts for _, counts in state.counts]).cpu().tolist()  # [stages, B, 3]
        spans = [b - a for a, b in zip(bounds, bounds[1:])]
        samples = state.start.samples
        for b, sample in enumerate(samples):
            video = [per_stage[s][b][0] for s, span in enumerate(spans) for _ in range(span)]
            audio = [per_stage[s][b][1] for s, span in enumerate(spans) for _ in range(span)]
            lengths = [per_stage[s][b][2] for s, span in enumerate(spans) for _ in range(span)]
            samples[b] = replace(
                sample,
                layer_avg_kept_video=layer_average(video, sample.video_before),
                layer_avg_kept_audio=layer_average(audio, sample.audio_before),
                prefill_flops_ratio=prefill_flops_ratio(lengths, sample.length_before, self.dims),
            )

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()
