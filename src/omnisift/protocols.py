"""The evaluation protocols of the papers in this field, as presets: one flag reproduces another paper's.

Published numbers are only comparable under one protocol, and the papers differ in pixels per frame,
frame cap, system prompt, answer cap and what an unparsable answer scores (README, "Protocol presets",
has the table and the sources). A preset fills those settings; any single one can still be set. The
preset and the effective values are part of a run's identity (`Protocol.to_dict`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .inputs import DEFAULT_PRESET, Protocol
from .media import SamplingConfig

__all__ = [
    "PRESETS",
    "PROTOCOL_SETTINGS",
    "Preset",
    "effective_values",
    "preset_protocol",
    "protocol_label",
    "values_text",
]

QWEN_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)
SEATS_SYSTEM_PROMPT = (
    QWEN_SYSTEM_PROMPT
    + " Please analyze the video carefully and select the most appropriate answer from the given options."
)


@dataclass(frozen=True)
class Preset:
    """One paper's protocol; `*_by_benchmark` entries replace the general value on that benchmark."""

    name: str
    source: str
    max_pixels: int
    max_frames: int
    fps: float = 2.0
    max_new_tokens: int = 1024
    system_prompt: str | None = None
    unparsable: str = "wrong"
    max_frames_by_benchmark: dict[str, int] = field(default_factory=dict)
    system_prompt_by_benchmark: dict[str, str] = field(default_factory=dict)
    unparsable_by_benchmark: dict[str, str] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "omnisift-paper",
            "OmniSIFT's release: 256*28*28 pixels, <= 256 frames at 2 fps, the template's system turn, "
            "1024 answer tokens (what its thinker really had), letter parsing",
            max_pixels=256 * 28 * 28,
            max_frames=256,
        ),
        Preset(
            "seats",
            "SEATS' lmms-eval runs: 144*28*28 pixels, 128 frames on WorldSense / Daily-Omni, 256 on "
            "OmniVideoBench, 768 on Video-MME, a system sentence added on Daily-Omni / WorldSense, 32 answer "
            "tokens, an unparsable Daily-Omni answer scored as a random option",
            max_pixels=144 * 28 * 28,
            max_frames=256,
            max_new_tokens=32,
            max_frames_by_benchmark={
                "worldsense": 128,
                "dailyomni": 128,
                "omnivideobench": 256,
                "videomme": 768,
            },
            system_prompt_by_benchmark={"dailyomni": SEATS_SYSTEM_PROMPT, "worldsense": SEATS_SYSTEM_PROMPT},
            unparsable_by_benchmark={"dailyomni": "random"},
        ),
        Preset(
            "omnizip",
            "OmniZip: 128*28*28 pixels, <= 768 frames at 2 fps (other settings not stated: OmniSIFT's)",
            max_pixels=128 * 28 * 28,
            max_frames=768,
        ),
        Preset(
            "vidcom2",
            "VidCom2 (omni): 320*28*28 pixels, <= 728 frames at 2 fps (other settings not stated: OmniSIFT's)",
            max_pixels=320 * 28 * 28,
            max_frames=728,
        ),
    )
}
assert DEFAULT_PRESET in PRESETS

PROTOCOL_SETTINGS = (
    "fps",
    "max_frames",
    "min_pixels",
    "max_pixels",
    "system_prompt",
    "max_new_tokens",
    "unparsable",
    "use_audio",
)
"""The settings a preset fills and a caller may set one by one."""

_SAMPLING = ("fps", "max_frames", "min_pixels", "max_pixels")


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"protocol={name!r} is not allowed: one of {', '.join(PRESETS)}")
    return PRESETS[name]


def _benchmark_key(benchmark: str | None) -> str | None:
    """ "Daily-Omni", "daily_omni", "dailyomni" -> "dailyomni" (the names the presets use)."""
    return None if benchmark is None else re.sub(r"[^a-z0-9]", "", benchmark.lower())


def preset_protocol(name: str = DEFAULT_PRESET, benchmark: str | None = None, **settings: Any) -> Protocol:
    """The protocol of preset `name` on `benchmark` (None: the preset's general values), with any of
    `PROTOCOL_SETTINGS` set on top (a None value means "not given": the preset's)."""
    unknown = sorted(set(settings) - set(PROTOCOL_SETTINGS))
    if unknown:
        raise ValueError(f"unknown protocol settings {unknown}; known: {', '.join(PROTOCOL_SETTINGS)}")
    preset = _preset(name)
    key = _benchmark_key(benchmark)
    values: dict[str, Any] = {
        "fps": preset.fps,
        "max_frames": preset.max_frames_by_benchmark.get(key, preset.max_frames),
        "max_pixels": preset.max_pixels,
        "system_prompt": preset.system_prompt_by_benchmark.get(key, preset.system_prompt),
        "max_new_tokens": preset.max_new_tokens,
        "unparsable": preset.unparsable_by_benchmark.get(key, preset.unparsable),
    }
    values.update({k: v for k, v in settings.items() if v is not None})
    sampling = SamplingConfig(**{k: values.pop(k) for k in _SAMPLING if k in values})
    return Protocol(sampling=sampling, preset=name, **values)


def protocol_label(protocol: Protocol, benchmark: str | None = None) -> str:
    """The preset's name, with the settings that differ from it: "seats", "omnisift-paper (fps=1)"."""
    base = preset_protocol(protocol.preset, benchmark)
    changed = []
    for key in PROTOCOL_SETTINGS:
        source, reference = (protocol.sampling, base.sampling) if key in _SAMPLING else (protocol, base)
        if getattr(source, key) != getattr(reference, key):
            changed.append(
                f"{key}={getattr(source, key)!r}"
                if key == "system_prompt"
                else f"{key}={getattr(source, key)}"
            )
    return protocol.preset + (f" ({', '.join(changed)})" if changed else "")


def effective_values(recorded: dict[str, Any]) -> dict[str, Any]:
    """The values a run actually used, from its recorded protocol (`Protocol.to_dict`, which leaves out a
    default preset and fallback): pixels, frames, fps, system prompt, answer cap, fallback, preset."""
    sampling = recorded.get("sampling", {})
    return {
        "preset": recorded.get("preset", DEFAULT_PRESET),
        "max_pixels": sampling.get("max_pixels"),
        "min_pixels": sampling.get("min_pixels"),
        "max_frames": sampling.get("max_frames"),
        "fps": sampling.get("fps"),
        "system_prompt": recorded.get("system_prompt"),
        "max_new_tokens": recorded.get("max_new_tokens"),
        "unparsable": recorded.get("unparsable", "wrong"),
    }


def values_text(values: dict[str, Any]) -> str:
    """One line for a report: "144*28*28 px/frame, <= 128 frames at 2 fps, system prompt 'You are ...',
    answer cap 32, unparsable: random"."""
    pixels = values["max_pixels"]
    side = f"{pixels // 784}*28*28" if pixels and pixels % 784 == 0 else str(pixels)
    prompt = values["system_prompt"]
    if prompt is None:
        prompt_text = "the template's"
    else:  # both ends: the presets' prompts share their start (SEATS' adds a sentence to Qwen's)
        prompt_text = repr(prompt if len(prompt) <= 60 else f"{prompt[:28]}...{prompt[-28:]}")
    return (
        f"{side} px/frame, <= {values['max_frames']} frames at {values['fps']:g} fps, system prompt "
        f"{prompt_text}, answer cap {values['max_new_tokens']}, unparsable: {values['unparsable']}"
    )
