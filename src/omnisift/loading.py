"""One loader for every entry point (attach/load_pretrained, evaluation, training, the demo).

`load_model("tiny")` (or another family's fixture name) builds a random-weight fixture with its offline
processor; a folder loads the stock transformers class its config names, with the processor from the
same folder (or `processor=`). A released OmniSIFT folder's `thinker.compressor.*` keys are set aside
here and reported as `selector_source`, so a selector-based method can load them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import ModelAdapter, adapter_for_checkpoint, adapter_for_tiny, tiny_names
from .weight_files import check_checkpoint_folder

__all__ = ["LoadedModel", "is_tiny", "load_model", "load_stock_model", "pick_device", "pick_dtype"]

logger = logging.getLogger(__name__)

_SELECTOR_KEYS = r"(^|\.)compressor\."


@dataclass
class LoadedModel:
    """A loaded model with what every entry point needs next to it."""

    model: nn.Module
    """The full model or the thinker, as the checkpoint holds it (fixtures: the thinker)."""
    processor: Any
    adapter: type[ModelAdapter]
    label: str
    random_weights: bool
    selector_source: Path | None = None
    """The folder holding `thinker.compressor.*` selector keys, when the checkpoint has them."""
    min_pixels: int | None = None
    """Pixel bounds the processor expects frames in (fixtures use small frames)."""
    max_pixels: int | None = None

    @property
    def thinker(self) -> nn.Module:
        return getattr(self.model, "thinker", self.model)


def is_tiny(source: str | Path) -> bool:
    """True for a fixture name ("tiny", ...): random weights, small frames."""
    return adapter_for_tiny(str(source)) is not None


def pick_device(device: str | torch.device | None) -> torch.device:
    """The given device, else this process's GPU (LOCAL_RANK) when there is one, else the CPU."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """bf16 on GPUs and fp32 on the CPU unless named ("bf16", "float32", a torch dtype...)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)} or 'auto'.")
    return _DTYPES[dtype]


def _has_selector_keys(path: Path) -> bool:
    from .selector import find_selector_keys

    try:
        return bool(find_selector_keys(path))
    except (FileNotFoundError, ValueError, KeyError, OSError):
        return False


def load_stock_model(path: str | Path, **from_pretrained_kwargs: Any) -> nn.Module:
    """The stock class of the checkpoint folder `path`, loaded without the talker unless asked for.

    `thinker.compressor.*` keys (a released OmniSIFT folder) are ignored here; load them with
    `omnisift.load_selector(path)` or a selector-based method.
    """
    path = Path(path)
    adapter = adapter_for_checkpoint(path)
    check_checkpoint_folder(path)  # a bad weight file is named here, not by safetensors deep in transformers
    cls = adapter.stock_class_for(path)
    kwargs = dict(from_pretrained_kwargs)
    if cls.__name__ == adapter.full_class:
        for key, value in adapter.loads_without_talker.items():
            kwargs.setdefault(key, value)
    ignored = list(getattr(cls, "_keys_to_ignore_on_load_unexpected", None) or [])
    cls._keys_to_ignore_on_load_unexpected = ignored + [_SELECTOR_KEYS]
    try:
        return cls.from_pretrained(path, **kwargs)
    finally:
        cls._keys_to_ignore_on_load_unexpected = ignored or None


def load_model(
    source: str | Path,
    *,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    attn_implementation: str = "sdpa",
    processor: str | Path | None = None,
    device_map: bool = True,
    seed: int = 0,
) -> LoadedModel:
    """Load `source` (a fixture name such as "tiny", or a checkpoint folder) with its processor.

    `device_map=False` leaves placement to the caller (DeepSpeed ZeRO-3 partitions while loading).
    Errors name the folder and say what is supported.
    """
    target = pick_device(device)
    tiny = adapter_for_tiny(str(source))
    torch_dtype = pick_dtype(dtype, target) if tiny is None or dtype is not None else torch.float32
    if tiny is not None:
        built = tiny.build_tiny(str(source), seed=seed, attn_implementation=attn_implementation)
        model = built.model.to(torch_dtype)
        return LoadedModel(
            model=model.to(target) if device_map else model,
            processor=built.processor,
            adapter=tiny,
            label=f"{source} (random weights)",
            random_weights=True,
            min_pixels=built.min_pixels,
            max_pixels=built.max_pixels,
        )
    path = Path(source)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model folder {path} not found; pass a checkpoint folder or a fixture name ({', '.join(tiny_names())})."
        )
    adapter = adapter_for_checkpoint(path)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "attn_implementation": attn_implementation}
    if device_map:
        kwargs["device_map"] = {"": str(target)}
    model = load_stock_model(path, **kwargs).eval()
    logger.info("loaded %s (%s, %s) on %s", path, adapter.family, torch_dtype, target)
    return LoadedModel(
        model=model,
        processor=adapter.load_processor(processor or path),
        adapter=adapter,
        label=path.name,
        random_weights=False,
        selector_source=path if _has_selector_keys(path) else None,
    )
