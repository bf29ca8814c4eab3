"""Synthetic merged inputs laid out exactly as the Qwen2.5-Omni processor and `get_rope_index` lay them.

Used by the tests (parity against a literal reference) and by the benchmarks (clips of any length
without running the encoders). Token order and M-RoPE ids follow docs/design.md#layout-rules, including the chunking quirk
below 1 fps where one grid is split across chunks.
"""

from __future__ import annotations

import math

import torch

from ...layout import TokenIds
from ...testing.batches import Segment, SyntheticBatch, pad_samples
from .adapter import TOKEN_IDS

__all__ = [
    "Segment",
    "text",
    "av_clip",
    "video",
    "audio",
    "image",
    "SyntheticBatch",
    "build_batch",
    "av_sample",
]


def text(length: int) -> Segment:
    return Segment("text", length=length)


def av_clip(
    seconds: float, grid_h: int = 2, grid_w: int = 2, fps: float = 2.0, audio_per_second: int = 25
) -> Segment:
    """A video with its audio track interleaved in 2-second chunks (`use_audio_in_video=True`)."""
    frames = max(2, int(round(seconds * fps)))
    frames += frames % 2
    return Segment(
        "av",
        grid_t=frames // 2,
        grid_h=grid_h,
        grid_w=grid_w,
        second_per_grid=2.0 / fps,
        audio_len=max(1, int(round(seconds * audio_per_second))),
    )


def video(seconds: float, grid_h: int = 2, grid_w: int = 2, fps: float = 2.0) -> Segment:
    """A video without audio (`use_audio_in_video=False`)."""
    frames = max(2, int(round(seconds * fps)))
    frames += frames % 2
    return Segment("video", grid_t=frames // 2, grid_h=grid_h, grid_w=grid_w, second_per_grid=2.0 / fps)


def audio(length: int) -> Segment:
    """A separate audio input (not part of a video)."""
    return Segment("audio", audio_len=length)


def image(grid_h: int = 2, grid_w: int = 2) -> Segment:
    return Segment("image", grid_t=1, grid_h=grid_h, grid_w=grid_w)


def _chunk_bounds(t_values: torch.Tensor, tokens_per_chunk: int, start: int) -> list[tuple[int, int]]:
    """Split a monotone list of t ids into chunks the way the processor does: the chunk bound advances by
    one chunk per boundary token, even when t jumps past several chunks."""
    bounds, begin, chunk = [], 0, 1
    for i, t in enumerate(t_values.tolist()):
        if t - start >= chunk * tokens_per_chunk:
            bounds.append((begin, i))
            begin = i
            chunk += 1
    bounds.append((begin, len(t_values)))
    return bounds


def _vision_positions(segment: Segment, start: int, position_id_per_seconds: int) -> torch.Tensor:
    t_index = torch.floor(
        torch.arange(segment.grid_t, dtype=torch.float32)
        * torch.tensor(segment.second_per_grid, dtype=torch.float32)
        * position_id_per_seconds
    ).long()
    if segment.kind == "image":
        t_index = torch.arange(segment.grid_t) * position_id_per_seconds
    cells = segment.grid_h * segment.grid_w
    t = t_index.repeat_interleave(cells)
    h = torch.arange(segment.grid_h).repeat_interleave(segment.grid_w).repeat(segment.grid_t)
    w = torch.arange(segment.grid_w).repeat(segment.grid_h * segment.grid_t)
    return torch.stack([t, h, w]) + start


def _sample(
    segments: list[Segment], ids: TokenIds, text_id: int, position_id_per_seconds: int, seconds_per_chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    tokens: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []

    def next_start() -> int:
        return int(positions[-1].max()) + 1 if positions else 0

    def emit(token: int | torch.Tensor, pos: torch.Tensor) -> None:
        count = pos.shape[1]
        tokens.append(token if isinstance(token, torch.Tensor) else torch.full((count,), token))
        positions.append(pos)

    def emit_text(token: int, count: int = 1) -> None:
        emit(token, torch.arange(count).expand(3, -1) + next_start())

    for seg in segments:
        if seg.kind == "text":
            emit_text(text_id, seg.length)
        elif seg.kind == "audio":
            emit_text(ids.audio_bos)
            emit_text(ids.audio, seg.audio_len)
            emit_text(ids.audio_eos)
        elif seg.kind in ("image", "video"):
            emit_text(ids.vision_bos)
            pos = _vision_positions(seg, next_start(), position_id_per_seconds)
            emit(ids.image if seg.kind == "image" else ids.video, pos)
            emit_text(ids.vision_eos)
        elif seg.kind == "av":
            start = next_start()
            emit(ids.vision_bos, torch.full((3, 1), start))
            emit(ids.audio_bos, torch.full((3, 1), start))
            start += 1
            video_pos = _vision_positions(seg, start, position_id_per_seconds)
            audio_pos = torch.arange(seg.audio_len).expand(3, -1) + start
            per_chunk = position_id_per_seconds * seconds_per_chunk
            video_chunks = _chunk_bounds(video_pos[0], per_chunk, start)
            audio_chunks = _chunk_bounds(audio_pos[0], per_chunk, start)
            for j in range(max(len(video_chunks), len(audio_chunks))):
                if j < len(video_chunks):
                    a, b = video_chunks[j]
                    emit(ids.video, video_pos[:, a:b])
                if j < len(audio_chunks):
                    a, b = audio_chunks[j]
                    emit(ids.audio, audio_pos[:, a:b])
            end = next_start()
            emit(ids.audio_eos, torch.full((3, 1), end))
            emit(ids.vision_eos, torch.full((3, 1), end))
        else:
            raise ValueError(f"unknown segment kind {seg.kind!r}")
    return torch.cat(tokens), torch.cat(positions, dim=1)


def build_batch(
    samples: list[list[Segment]],
    hidden_size: int = 64,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    padding_side: str = "left",
    token_ids: TokenIds | None = None,
    text_id: int = 100,
    pad_id: int = 151643,
    position_id_per_seconds: int = 25,
    seconds_per_chunk: int = 2,
    device: torch.device | str = "cpu",
) -> SyntheticBatch:
    """Build a padded batch; padding gets position id 1 and attention mask 0, as in transformers."""
    ids = token_ids or TOKEN_IDS
    built = [_sample(s, ids, text_id, position_id_per_seconds, seconds_per_chunk) for s in samples]
    batch = len(built)
    input_ids, position_ids, attention_mask = pad_samples(
        built, pad_id=pad_id, pad_position=1, padding_side=padding_side
    )
    generator = torch.Generator().manual_seed(seed)
    embeds = torch.randn(batch, input_ids.shape[1], hidden_size, generator=generator).to(dtype)
    return SyntheticBatch(
        input_ids.to(device),
        position_ids.to(device),
        attention_mask.to(device),
        embeds.to(device),
        token_ids=ids,
        segments=samples,
    )


def av_sample(seconds: float, tokens_per_grid: int, fps: float = 2.0, prompt: int = 16) -> list[Segment]:
    """A typical prompt: some text, one video with its audio, more text (grid made as square as possible)."""
    grid_h = int(math.isqrt(tokens_per_grid))
    while tokens_per_grid % grid_h:
        grid_h -= 1
    return [text(prompt), av_clip(seconds, grid_h, tokens_per_grid // grid_h, fps=fps), text(prompt)]
