"""The model of an evaluation run: loaded by the one loader (`omnisift.loading.load_model`), then
compressed (`attach`); `load_compressed` does both.

A selector-based method (omnisift and its ablations) without a selector of its own takes the one in
the checkpoint folder (`thinker.compressor.*` keys of a released OmniSIFT folder); on a fixture model
it gets a random selector (the whole model has random weights), with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..attach import CompressionHandle, attach
from ..config import CompressionConfig
from ..loading import is_tiny, load_model, pick_device

__all__ = ["CompressedModel", "is_tiny", "load_compressed"]

logger = logging.getLogger(__name__)


@dataclass
class CompressedModel:
    """What the runner needs: the module to `generate` with, its processor, the compression handle."""

    thinker: nn.Module
    processor: Any
    handle: CompressionHandle | None
    label: str
    random_weights: bool
    device: torch.device
    min_pixels: int | None = None  # processor pixel bounds the frames must be resized to
    max_pixels: int | None = None


def _with_selector(
    compression: CompressionConfig, source: Any, thinker: nn.Module, seed: int
) -> CompressionConfig:
    """Give a selector-based method without a selector the checkpoint's (or, on fixtures, a random one)."""
    if getattr(compression.method, "selector", "n/a") is not None:
        return compression
    if source is not None:
        return compression.with_method(selector=source)
    if compression.audio_drop == 0 and compression.retain is None:
        return compression
    from ..selector import RANDOM_SELECTOR, source_selector

    selector = source_selector(RANDOM_SELECTOR, hidden_size=thinker.config.text_config.hidden_size, seed=seed)
    logger.warning("fixture model: using a random audio selector (the whole model has random weights)")
    return compression.with_method(selector=selector)


def load_compressed(
    model: str,
    compression: CompressionConfig | None,
    device: str | None = None,
    dtype: str | None = None,
    processor_path: str | None = None,
    attn_implementation: str = "sdpa",
) -> CompressedModel:
    """Load `model` (a fixture name or a checkpoint folder) and attach `compression` (None = full tokens)."""
    target = pick_device(device)
    loaded = load_model(
        model, dtype=dtype, device=target, attn_implementation=attn_implementation, processor=processor_path
    )
    handle = None
    if compression is not None:
        if loaded.random_weights or loaded.selector_source is not None:
            compression = _with_selector(compression, loaded.selector_source, loaded.thinker, seed=0)
        handle = attach(loaded.model, compression)
    return CompressedModel(
        thinker=loaded.thinker,
        processor=loaded.processor,
        handle=handle,
        label=loaded.label,
        random_weights=loaded.random_weights,
        device=target,
        min_pixels=loaded.min_pixels,
        max_pixels=loaded.max_pixels,
    )
