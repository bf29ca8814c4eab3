"""Video files (or decoded media) and prompts -> model inputs for a model family: the one road.

Evaluation, training, lmms-eval, the demo and the test fixtures all come through here, so a question is
put to the model the same way everywhere:

- `effective_protocol` works out, once, the protocol a run really uses: the family's frame factor and
  audio window (from its adapter and processor) and, on a random-weight fixture, its small frames;
- `load_video` decodes a file with that protocol (`omnisift.media.load`);
- `encode` renders the chat template and calls the processor (transformers 5.23: frames already sampled
  and resized, the rate they really have, the audio track interleaved into the video placeholder);
- `collate` left-pads single-sample inputs into one batch. The processor takes one fps per call and
  every video is sampled at its own real rate, so videos with different rates are encoded one by one;
- `prepare_inputs` chains them: files in, `generate(**inputs)` ready out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .media import Media, SamplingConfig
from .models import ADAPTERS, ModelAdapter, adapter_for_checkpoint, adapter_for_tiny, find_adapter

__all__ = [
    "DEFAULT_PRESET",
    "UNPARSABLE_RULES",
    "Protocol",
    "collate",
    "conversation",
    "count_media_tokens",
    "effective_protocol",
    "encode",
    "family_of",
    "load_video",
    "prepare_inputs",
]

DEFAULT_PRESET = "omnisift-paper"
UNPARSABLE_RULES = ("wrong", "random")
"""What an answer that names no option scores as: wrong (the default), or a random option (SEATS'
Daily-Omni scorer), drawn with a fixed seed per question."""


@dataclass(frozen=True)
class Protocol:
    """How each question is put to the model. Defaults are the OmniSIFT paper's protocol (the
    `omnisift-paper` preset, docs/design.md): one user turn with the video then the prompt, no system
    turn (the chat template's default applies), the audio track interleaved, greedy decoding. Answers are
    capped at 1024 new tokens: the released script asks for 256, but that value never reaches the
    thinker, whose own limit (1024) is what the published answers had; it only matters for long captions.

    `preset` names the paper protocol these values came from (`omnisift.protocols`); `unparsable` is the
    multiple-choice parser's fallback (`UNPARSABLE_RULES`). Validated at construction.
    """

    system_prompt: str | None = None
    use_audio: bool = True
    max_new_tokens: int = 1024
    do_sample: bool = False
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    preset: str = DEFAULT_PRESET
    unparsable: str = "wrong"

    def __post_init__(self) -> None:
        value = self.max_new_tokens
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_new_tokens={value!r} is not allowed: a whole number >= 1")
        for name in ("use_audio", "do_sample"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed: true or false")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise ValueError(f"system_prompt={self.system_prompt!r} is not allowed: text or none")
        if self.unparsable not in UNPARSABLE_RULES:
            raise ValueError(
                f"unparsable={self.unparsable!r} is not allowed: one of {', '.join(UNPARSABLE_RULES)}"
            )
        if not isinstance(self.sampling, SamplingConfig):
            raise ValueError(f"sampling={self.sampling!r} is not allowed: a SamplingConfig")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a run's identity). `preset` and `unparsable` only where they differ from the
        default: runs made before they were settings keep their identity."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["sampling"] = self.sampling.to_dict()
        if values["preset"] == DEFAULT_PRESET:
            del values["preset"]
        if values["unparsable"] == "wrong":
            del values["unparsable"]
        return values

    def as_dict(self) -> dict[str, Any]:
        return self.to_dict()


ModelLike = str | Path | nn.Module | type[ModelAdapter] | Any


def family_of(model: ModelLike) -> type[ModelAdapter] | None:
    """The family of a fixture name, checkpoint folder, model, adapter class or loaded model (anything
    with an `adapter` attribute); None for a folder that holds no config.json yet."""
    if isinstance(model, type) and issubclass(model, ModelAdapter):
        return model
    if isinstance(model, nn.Module):
        return type(find_adapter(model))
    if isinstance(getattr(model, "adapter", None), type):
        return model.adapter
    if isinstance(model, (str, Path)):
        tiny = adapter_for_tiny(str(model))
        if tiny is not None:
            return tiny
        if (Path(model) / "config.json").is_file():
            return adapter_for_checkpoint(model)
        return None
    thinker = getattr(model, "thinker", None)
    return type(find_adapter(thinker)) if isinstance(thinker, nn.Module) else None


def _family_of_processor(processor: Any) -> type[ModelAdapter] | None:
    name = type(processor).__name__
    return next((a for a in ADAPTERS if processor is not None and a.processor_class == name), None)


def _fixture_pixels(model: ModelLike, family: type[ModelAdapter] | None) -> tuple[int, int] | None:
    """Frame pixel bounds of a random-weight fixture (its processor expects small frames), else None."""
    if isinstance(model, (str, Path)):
        return family.tiny_pixel_bounds if adapter_for_tiny(str(model)) is not None else None
    low, high = getattr(model, "min_pixels", None), getattr(model, "max_pixels", None)
    return (low, high) if low is not None and high is not None else None


def _processor_window(processor: Any) -> float | None:
    extractor = getattr(processor, "feature_extractor", None)
    if extractor is None or not getattr(extractor, "sampling_rate", None):
        return None
    return extractor.n_samples / extractor.sampling_rate


def effective_protocol(protocol: Protocol, model: ModelLike = None, processor: Any = None) -> Protocol:
    """The protocol a run really uses (every entry point asks here, once):

    - the family's frame factor (`ModelAdapter.frame_factor`) unless the protocol sets one;
    - the audio window: none for a family whose processor cuts nothing, else the processor's window
      (300 s for Qwen2.5-Omni), else the family's;
    - on a random-weight fixture (`model="tiny"`, a fixture's loaded model), the fixture's frame bounds.

    `model` is a fixture name, a checkpoint folder, a model, an adapter class or a loaded model; without
    one the family is read from the processor's class.
    """
    family = family_of(model) if model is not None else _family_of_processor(processor)
    sampling = protocol.sampling
    changes: dict[str, Any] = {}
    pixels = None if model is None else _fixture_pixels(model, family)
    if pixels is not None:
        changes["min_pixels"], changes["max_pixels"] = pixels
    if sampling.frame_factor is None and family is not None:
        changes["frame_factor"] = family.frame_factor
    window = _processor_window(processor) if processor is not None else None
    if family is not None and family.audio_window_s is None:
        changes["audio_window_s"] = None
    elif window is not None:
        changes["audio_window_s"] = window
    elif family is not None:
        changes["audio_window_s"] = family.audio_window_s
    if not changes:
        return protocol
    return replace(protocol, sampling=replace(sampling, **changes))


def load_video(path: str | Path, protocol: Protocol, *, threads: int | None = None) -> Media:
    """Decode `path` as `protocol` samples it (pass the `effective_protocol`)."""
    return protocol.sampling.load(path, audio=protocol.use_audio, threads=threads)


def conversation(
    prompt: str, system_prompt: str | None = None, video: Any = "<video>"
) -> list[dict[str, Any]]:
    """One user turn holding the video then the prompt, as the published evaluation sends it; a system
    turn only when `system_prompt` is given (else the chat template's default applies)."""
    messages: list[dict[str, Any]] = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append(
        {"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": prompt}]}
    )
    return messages


def _has_audio(video: Media) -> bool:
    return video.audio is not None and video.audio.size > 0


def encode(
    processor: Any, videos: Media | Sequence[Media], prompts: str | Sequence[str], protocol: Protocol
) -> dict[str, Any]:
    """Processor inputs for decoded videos (one per sample) in one processor call, so all must have the
    same frame rate. With `protocol.use_audio` each video's own track is interleaved into its placeholder
    (5.23: `audio=[...]`, `audio_from_video_indices`, `load_audio_from_video=True`) and the returned
    `use_audio_in_video` is True; videos without a track are encoded without audio, and a batch that
    mixes both is refused."""
    videos = [videos] if isinstance(videos, Media) else list(videos)
    prompts = [prompts] * len(videos) if isinstance(prompts, str) else list(prompts)
    if not videos or len(prompts) != len(videos):
        raise ValueError(f"{len(videos)} videos but {len(prompts)} prompts: give one prompt per video")
    rates = {round(v.fps, 9) for v in videos}
    if len(rates) != 1:
        raise ValueError(
            f"one processor call takes one frame rate, got {sorted(rates)}: encode videos one by one"
        )
    audio_flags = {protocol.use_audio and _has_audio(v) for v in videos}
    if len(audio_flags) != 1:
        raise ValueError(
            "cannot batch videos with and without an audio track together: encode them one by one"
        )
    with_audio = audio_flags.pop()
    texts = [
        processor.apply_chat_template(
            conversation(p, protocol.system_prompt), tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    sampling = protocol.sampling
    kwargs: dict[str, Any] = {
        "text": texts,
        "videos": [v.frames for v in videos],
        "videos_kwargs": {
            "fps": videos[0].fps,
            "do_sample_frames": False,
            "cap_pixels_per_frame": True,
            "size": {"shortest_edge": sampling.min_pixels, "longest_edge": sampling.max_pixels},
        },
        "padding": True,
        "return_tensors": "pt",
    }
    if with_audio:
        rate = int(processor.feature_extractor.sampling_rate)
        for v in videos:
            if v.audio_rate != rate:
                raise ValueError(f"{v.path}: audio is at {v.audio_rate} Hz, the processor expects {rate}")
        kwargs.update(
            audio=[v.audio for v in videos],
            audio_from_video_indices=list(range(len(videos))),
            load_audio_from_video=True,
        )
    out = dict(processor(**kwargs))
    out["video_second_per_grid"] = torch.as_tensor(out["video_second_per_grid"], dtype=torch.float32)
    out["use_audio_in_video"] = with_audio
    return out


def collate(samples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Concatenate single-sample inputs into one left-padded batch (all must agree on audio use)."""
    flags = {s["use_audio_in_video"] for s in samples}
    if len(flags) != 1:
        raise ValueError("cannot batch videos with and without an audio track together")
    length = max(s["input_ids"].shape[1] for s in samples)
    batch: dict[str, Any] = {"use_audio_in_video": flags.pop()}
    ids, masks = [], []
    for s in samples:
        pad = length - s["input_ids"].shape[1]
        ids.append(torch.nn.functional.pad(s["input_ids"], (pad, 0), value=pad_id))
        masks.append(torch.nn.functional.pad(s["attention_mask"], (pad, 0), value=0))
    batch["input_ids"] = torch.cat(ids)
    batch["attention_mask"] = torch.cat(masks)
    for key in samples[0]:
        if key in batch:
            continue
        values = [s[key] for s in samples]
        if key in ("input_features", "feature_attention_mask"):
            width = max(v.shape[-1] for v in values)
            values = [torch.nn.functional.pad(v, (0, width - v.shape[-1])) for v in values]
        batch[key] = torch.cat(values) if torch.is_tensor(values[0]) else [x for v in values for x in v]
    return batch


def encode_batch(
    processor: Any,
    videos: Sequence[Media],
    prompts: Sequence[str],
    protocol: Protocol,
    *,
    per_sample: bool = False,
) -> dict[str, Any]:
    """`encode` for videos that may differ in rate: one call when they share one (unless `per_sample`),
    else one call each and `collate`."""
    if len({round(v.fps, 9) for v in videos}) == 1 and not per_sample:
        return encode(processor, videos, prompts, protocol)
    parts = [encode(processor, v, p, protocol) for v, p in zip(videos, prompts, strict=True)]
    return collate(parts, pad_id=processor.tokenizer.pad_token_id)


def prepare_inputs(
    model: ModelLike,
    videos: str | Path | Media | Sequence[str | Path | Media],
    prompts: str | Sequence[str],
    protocol: Protocol | None = None,
    *,
    processor: Any = None,
    threads: int | None = None,
) -> Any:
    """Model inputs (a `BatchFeature`: `.to(device)`) for video files (or decoded media) and prompts, one video and one prompt per sample,
    left padded, ready for `thinker.generate(**inputs)` (`use_audio_in_video` included).

    `model` is what `omnisift.load_model` returns (its processor is used) or a model, fixture name or
    checkpoint folder with `processor=`. `protocol` defaults to the OmniSIFT paper's.
    """
    processor = processor if processor is not None else getattr(model, "processor", None)
    if processor is None:
        raise ValueError("no processor: pass what omnisift.load_model returns, or processor=")
    protocol = effective_protocol(protocol or Protocol(), model, processor)
    items = [videos] if isinstance(videos, (str, Path, Media)) else list(videos)
    texts = [prompts] * len(items) if isinstance(prompts, str) else list(prompts)
    if not items or len(texts) != len(items):
        raise ValueError(f"{len(items)} videos but {len(texts)} prompts: give one prompt per video")
    from transformers import BatchFeature

    decoded = [v if isinstance(v, Media) else load_video(v, protocol, threads=threads) for v in items]
    return BatchFeature(encode_batch(processor, decoded, texts, protocol))


def count_media_tokens(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, video_id: int, audio_id: int
) -> list[dict[str, int]]:
    """Per-sample counts of video, audio and other (text/special) tokens before any compression."""
    valid = attention_mask.bool()
    video = ((input_ids == video_id) & valid).sum(1)
    audio = ((input_ids == audio_id) & valid).sum(1)
    total = valid.sum(1)
    return [
        {"video": int(v), "audio": int(a), "text": int(t - v - a)}
        for v, a, t in zip(video.tolist(), audio.tolist(), total.tolist(), strict=True)
    ]
