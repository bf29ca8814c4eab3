"""Sizes shared by every family's tiny fixture model: one audio tower, vision tower and text model shape,
and the seeded build, so the families' fixtures differ only where their architectures do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["tiny_audio_config", "tiny_vision_config", "tiny_text_config", "seeded_model"]

ModelT = TypeVar("ModelT")


def tiny_audio_config(output_dim: int, **family: Any) -> dict[str, Any]:
    """A one-layer audio encoder (d_model 16, 128 mel bins) projecting to `output_dim`; `family` adds or
    overrides the family's own fields (its chunk window, for instance)."""
    sizes = dict(
        num_mel_bins=128, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, d_model=16
    )
    return {**sizes, "output_dim": output_dim, "max_source_positions": 1500, **family}


def tiny_vision_config(out_hidden_size: int, **family: Any) -> dict[str, Any]:
    """A one-block vision encoder (width 16, 2 x 2 merge, temporal patch 2) projecting to `out_hidden_size`;
    `family` adds or overrides the family's own fields (patch size, depth, window layout)."""
    sizes = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2)
    return {
        **sizes,
        "out_hidden_size": out_hidden_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        **family,
    }


def tiny_text_config(
    *, vocab_size: int, hidden_size: int, layers: int, heads: tuple[int, int], **family: Any
) -> dict[str, Any]:
    """A text model of `layers` layers with (attention, key/value) `heads` and a 2x MLP; `family` adds its
    rope parameters, special ids and any architecture fields (experts, head dim)."""
    sizes = dict(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size)
    shape = dict(num_hidden_layers=layers, num_attention_heads=heads[0], num_key_value_heads=heads[1])
    return {**sizes, **shape, "max_position_embeddings": 32768, **family}


def seeded_model(
    model_class: type[ModelT],
    config: Any,
    seed: int,
    attn_implementation: str,
    then: Callable[[ModelT], None] | None = None,
) -> ModelT:
    """`model_class` built from `config` in fp32 with weights that depend only on `seed`; `then` re-draws
    or rescales weights under the same seed. The global torch RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class._from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
        if then is not None:
            then(model)
    return model
