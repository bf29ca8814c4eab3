"""Synthetic merged inputs laid out as the Qwen3-Omni processor and `get_rope_index` lay them (docs/design.md#qwen3-omni).

A video with its audio track is one run `<vision_bos><audio_bos>` (positions s, s + 1), then its video
and audio tokens merge-sorted by t (a video token first on equal t), then `<audio_eos><vision_eos>`.
Video t ids are float32 `arange(grid_t) * second_per_grid * 13` plus the run's start; audio gets one t
per token. The next segment starts at the largest id of the last piece emitted + 1, as in the model
(a piece: a text run, a vision block, the merged tail of a video's run, a bos/eos pair).
Also returns what `get_rope_index` needs to recompute the ids (grids, seconds per grid, mel lengths).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...layout import TokenIds
from ...testing.batches import pad_samples
from .adapter import TOKEN_IDS, audio_token_count

__all__ = ["Segment", "text", "av_clip", "video", "audio", "image", "SyntheticBatch", "build_batch"]

POSITION_ID_PER_SECONDS = 13
MERGE = 2


@dataclass(frozen=True)
class Segment:
    """One part of a prompt: text, a video with its audio track ("av"), a video alone, an audio, an image."""

    kind: str
    length: int = 0
    grid_t: int = 0
    grid_h: int = 0
    grid_w: int = 0
    second_per_grid: float = 1.0
    mel_frames: int = 0

    @property
    def audio_len(self) -> int:
        return int(audio_token_count(torch.tensor(self.mel_frames))) if self.mel_frames else 0


def text(length: int) -> Segment:
    return Segment("text", length=length)


def av_clip(seconds: float, grid_h: int = 2, grid_w: int = 2, fps: float = 2.0) -> Segment:
    """A video sampled at `fps` (an even frame count) with its audio track (100 mel frames a second)."""
    frames = max(2, int(round(seconds * fps)))
    frames += frames % 2
    return Segment(
        "av",
        grid_t=frames // 2,
        grid_h=grid_h,
        grid_w=grid_w,
        second_per_grid=2.0 / fps,
        mel_frames=max(1, int(round(seconds * 100))),
    )


def video(seconds: float, grid_h: int = 2, grid_w: int = 2, fps: float = 2.0) -> Segment:
    frames = max(2, int(round(seconds * fps)))
    frames += frames % 2
    return Segment("video", grid_t=frames // 2, grid_h=grid_h, grid_w=grid_w, second_per_grid=2.0 / fps)


def audio(seconds: float) -> Segment:
    """A separate audio input (not part of a video)."""
    return Segment("audio", mel_frames=max(1, int(round(seconds * 100))))


def image(grid_h: int = 2, grid_w: int = 2) -> Segment:
    return Segment("image", grid_t=1, grid_h=grid_h, grid_w=grid_w)


def _vision(seg: Segment, start: torch.Tensor) -> torch.Tensor:
    """[3, grid_t * h * w] float32 ids of a vision block starting at `start`."""
    scale = 1.0 if seg.kind == "image" else seg.second_per_grid
    t = torch.arange(seg.grid_t) * torch.tensor(scale, dtype=torch.float32) * POSITION_ID_PER_SECONDS
    cells = seg.grid_h * seg.grid_w
    rows = [
        t.float().repeat_interleave(cells),
        torch.arange(seg.grid_h).repeat_interleave(seg.grid_w).repeat(seg.grid_t).float(),
        torch.arange(seg.grid_w).repeat(seg.grid_h * seg.grid_t).float(),
    ]
    return torch.stack(rows) + start


def _sample(segments: list[Segment], ids: TokenIds, text_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    tokens: list[torch.Tensor] = []
    pieces: list[torch.Tensor] = []

    def start() -> torch.Tensor:
        return pieces[-1].max() + 1 if pieces else torch.tensor(0.0)

    def emit(token: int | torch.Tensor, pos: torch.Tensor) -> None:
        tokens.append(token if isinstance(token, torch.Tensor) else torch.full((pos.shape[1],), token))
        pieces.append(pos)

    def emit_run(token_list: list[int]) -> None:
        emit(torch.tensor(token_list), torch.arange(len(token_list)).float().expand(3, -1) + start())

    for seg in segments:
        if seg.kind == "text":
            emit_run([text_id] * seg.length)
        elif seg.kind == "audio":
            emit_run([ids.audio_bos])
            emit_run([ids.audio] * seg.audio_len)
            emit_run([ids.audio_eos])
        elif seg.kind in ("image", "video"):
            emit_run([ids.vision_bos])
            emit(ids.image if seg.kind == "image" else ids.video, _vision(seg, start()))
            emit_run([ids.vision_eos])
        elif seg.kind == "av":
            emit_run([ids.vision_bos, ids.audio_bos])
            s = start()
            vis = _vision(seg, s)
            aud = torch.arange(seg.audio_len).float().expand(3, -1) + s
            i = j = 0
            while i < vis.shape[1] and j < aud.shape[1]:
                if vis[0, i] <= aud[0, j]:
                    emit(ids.video, vis[:, i : i + 1])
                    i += 1
                else:
                    emit(ids.audio, aud[:, j : j + 1])
                    j += 1
            if i < vis.shape[1]:
                emit(ids.video, vis[:, i:])
            if j < aud.shape[1]:
                emit(ids.audio, aud[:, j:])
            emit_run([ids.audio_eos, ids.vision_eos])
        else:
            raise ValueError(f"unknown segment kind {seg.kind!r}")
    return torch.cat(tokens), torch.cat(pieces, dim=1)


@dataclass
class SyntheticBatch:
    """Merged inputs of a padded batch and the media facts `get_rope_index` needs."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    """[3, B, N] float32; padding gets 0 as in `get_rope_index`."""
    attention_mask: torch.Tensor
    inputs_embeds: torch.Tensor
    video_grid_thw: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    video_second_per_grid: torch.Tensor | None
    audio_seqlens: torch.Tensor | None
    """Mel frames of every audio (in order), what `get_rope_index` turns into token counts."""

    def rope_kwargs(self) -> dict[str, torch.Tensor | None]:
        return {
            "image_grid_thw": self.image_grid_thw,
            "video_grid_thw": self.video_grid_thw,
            "attention_mask": self.attention_mask,
            "audio_seqlens": self.audio_seqlens,
            "second_per_grids": self.video_second_per_grid,
        }


def build_batch(
    samples: list[list[Segment]],
    hidden_size: int = 64,
    *,
    seed: int = 0,
    padding_side: str = "left",
    token_ids: TokenIds | None = None,
    text_id: int = 100,
    pad_id: int = 151643,
) -> SyntheticBatch:
    ids = token_ids or TOKEN_IDS
    built = [_sample(s, ids, text_id) for s in samples]
    batch = len(built)
    input_ids, position_ids, attention_mask = pad_samples(
        built, pad_id=pad_id, pad_position=0.0, padding_side=padding_side, position_dtype=torch.float32
    )
    segs = [seg for sample in samples for seg in sample]
    vids = [s for s in segs if s.kind in ("av", "video")]
    imgs = [s for s in segs if s.kind == "image"]
    auds = [s for s in segs if s.kind in ("av", "audio")]

    def thw(items: list[Segment]) -> torch.Tensor | None:
        if not items:
            return None
        return torch.tensor([[s.grid_t, s.grid_h * MERGE, s.grid_w * MERGE] for s in items])

    generator = torch.Generator().manual_seed(seed)
    return SyntheticBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        inputs_embeds=torch.randn(batch, input_ids.shape[1], hidden_size, generator=generator),
        video_grid_thw=thw(vids),
        image_grid_thw=thw(imgs),
        video_second_per_grid=torch.tensor([s.second_per_grid for s in vids]) if vids else None,
        audio_seqlens=torch.tensor([s.mel_frames for s in auds]) if auds else None,
    )
