"""The audio-visual block of one Qwen2.5-Omni video with its audio track, as transformers lays it out.

A video with its own audio (`use_audio_in_video`) becomes `<vision_bos><audio_bos>`, then per 2-second
chunk the chunk's video tokens and the chunk's audio tokens, then `<audio_eos><vision_eos>` (docs/design.md#layout-rules).
This module rebuilds that order and the M-RoPE ids from the grid, the seconds per grid and the audio
feature length alone, with transformers' rules (facts, not code, of 5.19-5.23):

- t of grid i is `floor(i * float32(second_per_grid) * 25)`; audio token j has t = j;
- a chunk boundary advances by one chunk per token, so a grid whose t jumps past a whole chunk (below
  1 fps) is split: its first token closes the previous chunk;
- both bos tokens share one position, the media start one after it; both eos tokens share the position
  after the largest id of the last chunk appended, and the text after them continues from there.

Nothing here imports vLLM: the positions are testable against `get_rope_index` directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..layout import TokenIds

__all__ = ["Block", "audio_token_count", "build_block", "build_block_qwen3", "whole_t_step"]


def audio_token_count(feature_length: int) -> int:
    """Audio tokens of an audio input of `feature_length` mel frames (the encoder's two stride-2 steps)."""
    return ((int(feature_length) - 1) // 2 + 1 - 2) // 2 + 1


def _chunk_bounds(values: np.ndarray, per_chunk: int) -> list[tuple[int, int]]:
    """(start, end) slices of `values` (non-decreasing) per chunk; the bound moves one chunk per token."""
    bounds, start, chunk = [], 0, 1
    for i, value in enumerate(values.tolist()):
        if value >= chunk * per_chunk:
            bounds.append((start, i))
            start, chunk = i, chunk + 1
    bounds.append((start, len(values)))
    return bounds


@dataclass(frozen=True)
class Block:
    """One video's media tokens between `<audio_bos>` and `<audio_eos>`, in sequence order.

    `positions` are relative to the first media token (the bos tokens sit at -1); `end` is the relative
    position of both eos tokens (text after the block continues at `end + 1`).
    """

    is_video: np.ndarray
    """[n] bool, True for video tokens, False for audio tokens."""
    positions: np.ndarray
    """[3, n] int64 M-RoPE ids (t, h, w) relative to the first media token."""
    end: int

    def __len__(self) -> int:
        return int(self.is_video.size)

    def input_ids(self, token_ids: TokenIds) -> torch.Tensor:
        """[n] the video/audio token ids of the block."""
        ids = np.where(self.is_video, token_ids.video, token_ids.audio)
        return torch.from_numpy(ids.astype(np.int64))


def build_block(
    grid_thw: tuple[int, int, int],
    second_per_grid: float,
    audio_tokens: int,
    *,
    spatial_merge_size: int = 2,
    positions_per_second: float = 25.0,
    seconds_per_chunk: float = 2.0,
) -> Block:
    """The interleaved block of a video of `grid_thw` patches and its `audio_tokens` audio tokens."""
    grid_t, grid_h, grid_w = (int(v) for v in grid_thw)
    h, w = grid_h // spatial_merge_size, grid_w // spatial_merge_size
    step = np.float32(second_per_grid) * np.float32(positions_per_second)
    t_grid = np.floor(np.arange(grid_t, dtype=np.float32) * step).astype(np.int64)
    video = np.stack(
        [
            np.repeat(t_grid, h * w),
            np.tile(np.repeat(np.arange(h), w), grid_t),
            np.tile(np.arange(w), grid_t * h),
        ]
    )
    audio = np.broadcast_to(np.arange(audio_tokens, dtype=np.int64), (3, audio_tokens))
    per_chunk = int(positions_per_second * seconds_per_chunk)
    video_chunks = _chunk_bounds(video[0], per_chunk) if video.shape[1] else []
    audio_chunks = _chunk_bounds(audio[0], per_chunk) if audio_tokens else []
    parts: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    for j in range(max(len(video_chunks), len(audio_chunks))):
        for chunks, source, flag in ((video_chunks, video, True), (audio_chunks, audio, False)):
            if j < len(chunks):
                start, stop = chunks[j]
                parts.append(source[:, start:stop])
                kinds.append(np.full(stop - start, flag))
    positions = np.concatenate(parts, axis=1) if parts else np.zeros((3, 0), dtype=np.int64)
    # transformers: the eos tokens follow the largest id of the LAST part appended (not of the block).
    last = next((p for p in reversed(parts) if p.shape[1]), None)
    end = int(last.max()) + 1 if last is not None else 0
    return Block(is_video=np.concatenate(kinds) if kinds else np.zeros(0, bool), positions=positions, end=end)


def whole_t_step(second_per_grid: float, positions_per_second: float, temporal_patch_size: int = 2) -> int:
    """Position ids between two Qwen3-Omni video grids, refused unless a whole number.

    transformers gives grid i the float t id `i * second_per_grid * positions_per_second`; vLLM keeps integer
    positions and truncates, so only rates with a whole step can match transformers.
    """
    step = float(np.float32(second_per_grid)) * positions_per_second
    if abs(step - round(step)) > 1e-4:
        fps = temporal_patch_size / second_per_grid
        ids = temporal_patch_size * positions_per_second
        whole = ", ".join(f"{ids / k:g}" for k in (1, 2, 4, 5, 10, 13, 26, 52) if (ids / k) <= 60)
        raise ValueError(
            f"a video sampled at {fps:g} fps puts its frame grids {step:.4g} position ids apart ({second_per_grid:g} s "
            f"per grid x {positions_per_second:g} ids per second), not a whole number: vLLM keeps integer positions, "
            f"so it cannot match transformers' fractional t ids. Sample at an fps whose {ids:g} / fps is whole "
            f"({whole} ... fps; e.g. 2, 1 or 0.5)."
        )
    return round(step)


def build_block_qwen3(
    grid_thw: tuple[int, int, int],
    second_per_grid: float,
    audio_tokens: int,
    *,
    spatial_merge_size: int = 2,
    positions_per_second: float = 13.0,
    temporal_patch_size: int = 2,
) -> Block:
    """The block of a Qwen3-Omni video and its audio: tokens merged one by one by t id, video first on ties.

    Facts (transformers 5.23 `get_rope_index`, vLLM 0.32 equal at whole-number steps): video grid i has t id
    `i * step`, audio token j has t id j; `<vision_start>` and `<audio_start>` take consecutive ids, the media
    start one after; `end` (one past the largest id in any row) is `<audio_end>`'s, `<vision_end>` takes the
    next one.
    """
    grid_t, grid_h, grid_w = (int(v) for v in grid_thw)
    h, w = grid_h // spatial_merge_size, grid_w // spatial_merge_size
    step = whole_t_step(second_per_grid, positions_per_second, temporal_patch_size)
    t_grid = np.arange(grid_t, dtype=np.int64) * step
    video = np.stack(
        [
            np.repeat(t_grid, h * w),
            np.tile(np.repeat(np.arange(h), w), grid_t),
            np.tile(np.arange(w), grid_t * h),
        ]
    )
    audio = np.broadcast_to(np.arange(audio_tokens, dtype=np.int64), (3, audio_tokens))
    # Stable merge by t with video first on ties: sort key (t, 0 for video / 1 for audio, original order).
    t = np.concatenate([video[0], audio[0]])
    kind = np.concatenate([np.zeros(video.shape[1], np.int64), np.ones(audio_tokens, np.int64)])
    order = np.lexsort((np.arange(t.size), kind, t))
    positions = np.concatenate([video, audio], axis=1)[:, order]
    is_video = (kind == 0)[order]
    end = int(positions.max()) + 1 if positions.size else 0
    return Block(is_video=is_video, positions=np.ascontiguousarray(positions), end=end)
