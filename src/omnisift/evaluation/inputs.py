"""Turn a decoded video and a prompt into Qwen2.5-Omni inputs, and batch them.

The processor takes a single fps per call, but each video is sampled at its own real fps (long videos
fall below 2 fps at the 256-frame cap), so every sample is encoded alone and the samples are then
collated here with left padding, the layout batched `generate` expects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..media import Media, SamplingConfig

__all__ = ["Protocol", "collate", "conversation", "count_media_tokens", "encode_sample"]


@dataclass(frozen=True)
class Protocol:
    """How each question is put to the model. Defaults are the published protocol (SPEC 7):
    one user turn with the video then the prompt, no system turn (the chat template's default
    applies), the audio track interleaved, greedy decoding. Answers are capped at 1024 new tokens: the
    released script asks for 256, but that value never reaches the thinker, whose own limit (1024) is
    what the published answers had (SPEC 7, Corrections); it only matters for long captions."""

    system_prompt: str | None = None
    use_audio: bool = True
    max_new_tokens: int = 1024
    do_sample: bool = False
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def conversation(prompt: str, system_prompt: str | None = None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append(
        {"role": "user", "content": [{"type": "video", "video": "<video>"}, {"type": "text", "text": prompt}]}
    )
    return messages


def encode_sample(processor: Any, video: Media, prompt: str, protocol: Protocol) -> dict[str, Any]:
    """Processor inputs for one sample (batch of one), with the rate the video's frames really have."""
    text = processor.apply_chat_template(
        conversation(prompt, protocol.system_prompt), tokenize=False, add_generation_prompt=True
    )
    sampling = protocol.sampling
    videos_kwargs = {
        "fps": video.fps,
        "do_sample_frames": False,
        "cap_pixels_per_frame": True,
        "size": {"shortest_edge": sampling.min_pixels, "longest_edge": sampling.max_pixels},
    }
    kwargs: dict[str, Any] = {
        "text": [text],
        "videos": [video.frames],
        "videos_kwargs": videos_kwargs,
        "padding": True,
        "return_tensors": "pt",
    }
    with_audio = protocol.use_audio and video.audio is not None and video.audio.size > 0
    if with_audio:
        kwargs.update(audio=[video.audio], audio_from_video_indices=[0], load_audio_from_video=True)
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
