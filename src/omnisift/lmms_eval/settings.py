"""Turn lmms-eval's `--model_args` into what `omnisift eval` takes: a model source, a compression and a
protocol. Pure Python (no lmms-eval import), so it is tested with the rest of the package.

lmms-eval splits `--model_args` on commas and turns numbers and true/false into Python values; every
key this module does not know is a setting of the method (`knn=3`, `alphas=[0.5,1]`), read as JSON
where it parses, exactly like `omnisift eval --method-param`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from omnisift.budget import BudgetSettings
from omnisift.config import (
    DEFAULT_AUDIO_DROP,
    DEFAULT_METHOD,
    DEFAULT_VIDEO_DROP,
    NO_COMPRESSION,
    CompressionConfig,
    check_seed,
    compression_from_settings,
)
from omnisift.inputs import DEFAULT_PRESET, Protocol
from omnisift.methods import parse_method_params
from omnisift.protocols import preset_protocol

__all__ = ["ModelSettings", "parse_model_args", "protocol_for"]

_SAMPLING_KEYS = ("fps", "max_frames", "min_pixels", "max_pixels")
_KNOWN = {
    "pretrained",
    "method",
    "retain",
    "budget",
    "video_drop",
    "audio_drop",
    "selector",
    "seed",
    "device",
    "dtype",
    "processor",
    "batch_size",
    "max_batch_size",
    "attn_implementation",
    "use_audio",
    "system_prompt",
    "max_new_tokens",
    "protocol",
    *_SAMPLING_KEYS,
}


@dataclass(frozen=True)
class ModelSettings:
    """Everything `--model omnisift --model_args ...` asked for."""

    pretrained: str
    method: str = DEFAULT_METHOD
    retain: float | None = None
    video_drop: float | None = None
    """None: the default drop (also what `omnisift eval` does without --video-drop)."""
    audio_drop: float | None = None
    selector: str | None = None
    seed: int | None = None
    budget: str | None = None
    """How retain is read ('input' / 'layer-avg'; None: the method's own way), as `--budget`."""
    method_params: dict[str, Any] = field(default_factory=dict)
    protocol: Protocol = field(default_factory=Protocol)
    """The preset's general values with the given settings (`protocol_for` adds a task's own values)."""
    protocol_settings: dict[str, Any] = field(default_factory=dict)
    """The protocol settings `--model_args` named (they override the preset's on every task)."""
    batch_size: int = 1
    device: str | None = None
    dtype: str | None = None
    processor: str | None = None
    attn_implementation: str = "sdpa"

    @property
    def compressed(self) -> bool:
        return self.method not in NO_COMPRESSION

    def compression(self) -> CompressionConfig | None:
        """The `CompressionConfig` (validated: an unknown method or setting raises here), or None."""
        return compression_from_settings(
            self.method,
            video_drop=self.video_drop,
            audio_drop=self.audio_drop,
            retain=self.retain,
            selector=self.selector,
            seed=self.seed,
            method_params=self.method_params,
            budget=self.budget,
        )


def _number(key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"--model_args {key}={value!r}: expected a number")
    if kind is int and float(value) != int(value):
        raise ValueError(f"--model_args {key}={value!r}: expected a whole number")
    return kind(value)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"--model_args {key}={value!r}: expected true or false")
    return value


def _method_value(key: str, value: Any) -> Any:
    """JSON where a text value parses as JSON (lists, null), as `--method-param` reads it."""
    if isinstance(value, str):
        return parse_method_params([f"{key}={value}"])[key]
    return value


def parse_model_args(args: dict[str, Any]) -> ModelSettings:
    """`{"pretrained": "tiny", "method": "omnisift", "retain": 0.25, "knn": 3}` -> `ModelSettings`.

    Raises ValueError naming the argument when a value has the wrong type or `pretrained` is missing.
    """
    if not args.get("pretrained"):
        raise ValueError(
            "--model_args needs pretrained=PATH (a Qwen2.5-Omni checkpoint folder) or pretrained=tiny "
            "(the random-weight fixture)"
        )
    method_params = {k: _method_value(k, v) for k, v in args.items() if k not in _KNOWN}
    given: dict[str, Any] = {
        k: _number(k, args[k], float if k == "fps" else int)
        for k in _SAMPLING_KEYS
        if args.get(k) is not None
    }
    if args.get("max_new_tokens") is not None:
        given["max_new_tokens"] = _number("max_new_tokens", args["max_new_tokens"], int)
    if "use_audio" in args:
        given["use_audio"] = _flag("use_audio", args["use_audio"])
    if args.get("system_prompt") is not None:
        given["system_prompt"] = str(args["system_prompt"])
    preset = str(args.get("protocol") or DEFAULT_PRESET)
    protocol = preset_protocol(preset, **given)  # validated here, as `omnisift eval` validates it
    batch = args.get("batch_size")
    if batch in (None, "", "auto"):
        batch = 1
    elif isinstance(batch, str) and batch.isdigit():
        batch = int(batch)
    batch = _number("batch_size", batch, int)
    if batch < 1:
        raise ValueError(f"--batch_size must be at least 1 (got {batch})")
    retain = args.get("retain")
    retain = None if retain in ("none", "None") else retain
    video_drop, audio_drop, seed = args.get("video_drop"), args.get("audio_drop"), args.get("seed")
    # the config's own checks, so a bad value reads as it does from `omnisift eval` and Python
    BudgetSettings(
        DEFAULT_VIDEO_DROP if video_drop is None else video_drop,
        DEFAULT_AUDIO_DROP if audio_drop is None else audio_drop,
        retain,
    )
    check_seed(seed)
    return ModelSettings(
        pretrained=str(args["pretrained"]),
        method=str(args.get("method", DEFAULT_METHOD)),
        retain=retain,
        video_drop=video_drop,
        audio_drop=audio_drop,
        selector=None if args.get("selector") in (None, "") else str(args["selector"]),
        seed=seed,
        budget=None if args.get("budget") in (None, "", "none", "None") else str(args["budget"]),
        method_params=method_params,
        protocol=protocol,
        protocol_settings=given,
        batch_size=batch,
        device=args.get("device") or None,
        dtype=args.get("dtype") or None,
        processor=args.get("processor") or None,
        attn_implementation=str(args.get("attn_implementation", "sdpa")),
    )


def protocol_for(settings: ModelSettings, task: str | None) -> Protocol:
    """The protocol on lmms-eval task `task` ("omnisift_dailyomni"): the preset's values for that
    benchmark (SEATS' frame caps and system sentence differ per benchmark), then the given settings."""
    benchmark = None if task is None else task.removeprefix("omnisift_")
    return preset_protocol(settings.protocol.preset, benchmark, **settings.protocol_settings)


def identity(settings: ModelSettings) -> str:
    """One line naming the model and compression (logged and stored with the results)."""
    compression = settings.compression()
    described = {
        "pretrained": settings.pretrained,
        "compression": None if compression is None else compression.to_dict(),
        "protocol": settings.protocol.as_dict(),
    }
    return json.dumps(described, sort_keys=True, default=str)
