"""Synthetic merged inputs laid out as the Qwen3-Omni processor and `get_rope_index` lay them (docs/design.md#qwen3-omni).

A video with its audio track is one run `<vision_bos><audio_bos>` (positions s, s + 1), then its video
and audio tokens merge-sorted by t (a video token first on equal t), then `<audio_eos><vision_eos>`.
Video t ids are float32 `arange(grid_t) * second_per_grid * 13` plus the run's start; audio gets one t
per token. The next segment starts at the largest id of the last piece emitted + 1, as in the model
(a piece: a text run, a vision block, the merged tail of a video's run, a bos/eos pair).
Also returns what `get_rope_index` needs to recompute the ids (grids, seconds per grid, mel lengths).
"""

from __future__ import annotations

import torch

from ...layout import TokenIds
from ...testing.batches import Segment, SyntheticBatch, pad_samples
from .adapter import TOKEN_IDS, audio_token_count

__all__ = ["Segment", "text", "av_clip", "video", "audio", "image", "SyntheticBatch", "build_batch"]

POSITION_ID_PER_SECONDS = 13
MERGE = 2


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
        mel_frames=_mel(seconds),
        audio_len=_audio_tokens(_mel(seconds)),
    )


def video(seconds: float, grid_h: int = 2, grid_w: int = 2, fps: float = 2.0) -> Segment:
    frames = max(2, int(round(seconds * fps)))
    frames += frames % 2
    return Segment("video", grid_t=frames // 2, grid_h=grid_h, grid_w=grid_w, second_per_grid=2.0 / fps)


def audio(seconds: float) -> Segment:
    """A separate audio input (not part of a video)."""
    return Segment("audio", mel_frames=_mel(seconds), audio_len=_audio_tokens(_mel(seconds)))


def _mel(seconds: float) -> int:
    return max(1, int(round(seconds * 100)))


def _audio_tokens(mel_frames: int) -> int:
    return int(audio_token_count(torch.tensor(mel_frames))) if mel_frames else 0


def _audio_len(seg: Segment) -> int:
    """Audio tokens of a segment: given, or from its mel frames."""
    return seg.audio_len or _audio_tokens(seg.mel_frames)


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
            emit_run([ids.audio] * _audio_len(seg))
            emit_run([ids.audio_eos])
        elif seg.kind in ("image", "video"):
            emit_run([ids.vision_bos])
            emit(ids.image if seg.kind == "image" else ids.video, _vision(seg, start()))
            emit_run([ids.vision_eos])
        elif seg.kind == "av":
            emit_run([ids.vision_bos, ids.audio_bos])
            s = start()
            vis = _vision(seg, s)
            aud = torch.arange(_audio_len(seg)).float().expand(3, -1) + s
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
        token_ids=ids,
        segments=samples,
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        inputs_embeds=torch.randn(batch, input_ids.shape[1], hidden_size, generator=generator),
        video_grid_thw=thw(vids),
        image_grid_thw=thw(imgs),
        video_second_per_grid=torch.tensor([s.second_per_grid for s in vids]) if vids else None,
        audio_seqlens=torch.tensor([s.mel_frames for s in auds]) if auds else None,
    )
