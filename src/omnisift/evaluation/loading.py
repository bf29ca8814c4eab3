"""Load the model, processor and compression for an evaluation run.

`--model tiny` builds the tiny random-weight model and processor (demos and tests); a folder loads a
Qwen2.5-Omni checkpoint. A released OmniSIFT folder (with `thinker.compressor.*` keys) evaluated with
method "omnisift" goes through `omnisift.load_pretrained`, which loads its fine-tuned LLM and its
selector together; anything else loads the stock class and attaches the configured method.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models.qwen2_5_omni import stock_class_for

__all__ = ["LoadedModel", "NO_COMPRESSION", "load_model"]

logger = logging.getLogger(__name__)

NO_COMPRESSION = ("none", "full")
TINY = "tiny"


@dataclass
class LoadedModel:
    """What the runner needs: the module to `generate` with, its processor, the compression handle."""

    thinker: nn.Module
    processor: Any
    handle: Any | None
    label: str
    random_weights: bool
    device: torch.device
    min_pixels: int | None = None  # processor pixel bounds the frames must be resized to
    max_pixels: int | None = None


def engine() -> Any:
    """The compression API (`CompressionConfig`, `attach`, `load_pretrained`) of the omnisift package."""
    import importlib

    return importlib.import_module("omnisift.attach")


def _has_selector_keys(path: Path) -> bool:
    from omnisift.selector import find_selector_keys

    try:
        return bool(find_selector_keys(path))
    except (FileNotFoundError, ValueError, KeyError, OSError):
        return False


def _load_processor(path: Path, processor_path: str | None) -> Any:
    from transformers import Qwen2_5OmniProcessor

    source = processor_path or str(path)
    try:
        return Qwen2_5OmniProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(
            f"no Qwen2.5-Omni processor files in {source} ({exc}); pass --processor with a folder that has "
            "them (e.g. a local copy of Qwen/Qwen2.5-Omni-7B)"
        ) from exc


def _stock_class(path: Path) -> type:
    return stock_class_for(path)[0]


def _pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        import os

        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }.get(dtype, torch.float32)


def load_model(
    model: str,
    compression: Any | None,
    device: str | None = None,
    dtype: str | None = None,
    processor_path: str | None = None,
    attn_implementation: str = "sdpa",
) -> LoadedModel:
    """Load `model` ("tiny" or a checkpoint folder) and attach `compression` (None = full tokens)."""
    attach = engine().attach
    target = _pick_device(device)
    if model == TINY:
        from omnisift.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS, tiny_processor, tiny_thinker

        thinker = tiny_thinker(seed=0).to(target)
        handle = None
        if compression is not None:
            if compression.selector is None and _needs_selector(compression):
                from omnisift.selector import VisionGuidedAudioSelector

                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(compression.seed)
                    compression.selector = VisionGuidedAudioSelector(thinker.config.text_config.hidden_size)
                logger.warning(
                    "tiny model: using a random audio selector (the whole model has random weights)"
                )
            handle = attach(thinker, compression)
        return LoadedModel(
            thinker=thinker,
            processor=tiny_processor(),
            handle=handle,
            label="tiny (random weights)",
            random_weights=True,
            device=target,
            min_pixels=TINY_MIN_PIXELS,
            max_pixels=TINY_MAX_PIXELS,
        )

    path = Path(model)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model folder {path} not found; pass a Qwen2.5-Omni checkpoint folder or 'tiny'"
        )
    torch_dtype = _pick_dtype(dtype, target)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "device_map": {"": str(target)}}
    kwargs["attn_implementation"] = attn_implementation
    cls = _stock_class(path)
    if cls.__name__ == "Qwen2_5OmniForConditionalGeneration":
        kwargs["enable_audio_output"] = False  # text answers only: do not build the talker
    with_selector = _has_selector_keys(path)
    if (
        compression is not None
        and compression.method == "omnisift"
        and compression.selector is None
        and with_selector
    ):
        loaded, handle = engine().load_pretrained(path, compression, **kwargs)
    else:
        loaded = cls.from_pretrained(path, **kwargs)
        handle = attach(loaded, compression) if compression is not None else None
    loaded.eval()
    thinker = getattr(loaded, "thinker", loaded)
    processor = _load_processor(path, processor_path)
    logger.info("loaded %s (%s) on %s", path, torch_dtype, target)
    return LoadedModel(
        thinker=thinker,
        processor=processor,
        handle=handle,
        label=path.name,
        random_weights=False,
        device=target,
    )


def _needs_selector(compression: Any) -> bool:
    from omnisift.methods import get_method

    method = get_method(compression.method)
    return bool(getattr(method, "needs_selector", False)) and (
        compression.audio_drop > 0 or compression.retain is not None
    )
