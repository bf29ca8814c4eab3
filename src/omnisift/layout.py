"""Where the video grids, 2-second groups and audio tokens of each sample sit in a merged sequence.

Everything is derived from token ids, the temporal row of the M-RoPE position ids and the attention
mask, never from token order alone: below 1 fps the processor splits one grid across chunks, so a
grid is "the video tokens of one video that share a t value" (docs/design.md#layout-rules).

The whole batch is handled at once with tensor ops. The number of host syncs is constant (sizes of
the video, grid, group and audio sets), whatever the number of groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["TokenIds", "Layout", "build_layout", "require_token_ids"]


@dataclass(frozen=True)
class TokenIds:
    """Special token ids of a model family's vocabulary (each family's adapter provides its real values)."""

    audio: int
    audio_bos: int
    audio_eos: int
    vision_bos: int
    vision_eos: int
    image: int
    video: int


@dataclass
class Layout:
    """Video grids, groups and audio windows of a batch, as flat index tensors.

    Video tokens are listed grid by grid (grids sorted by sample, video, t) and, inside a grid, in
    sequence order. A "video" is a contiguous run of video/audio tokens: two videos in one prompt are
    always separated by other tokens, so grids of different videos never pair up.
    """

    batch_size: int
    seq_len: int
    valid: torch.Tensor
    """[B, N] bool, False on padding."""
    is_video: torch.Tensor
    """[B, N] bool, valid video tokens."""
    is_audio: torch.Tensor
    """[B, N] bool, valid audio tokens (interleaved with a video or not)."""

    video_flat: torch.Tensor
    """[V] flat index (b * N + n) of each video token, grid by grid."""
    video_grid: torch.Tensor
    """[V] grid of each video token."""
    video_rank: torch.Tensor
    """[V] index of the token inside its grid, in sequence order."""

    grid_batch: torch.Tensor
    """[G] sample of each grid."""
    grid_t: torch.Tensor
    """[G] temporal position id of each grid (integer or float, as the model computes them)."""
    grid_size: torch.Tensor
    """[G] number of tokens of each grid."""
    grid_group: torch.Tensor
    """[G] group (pair of grids) of each grid."""
    grid_is_first: torch.Tensor
    """[G] True for the first grid of a group (spatial rule), False for the second (temporal rule)."""
    grid_video_start: torch.Tensor
    """[G] True where a new video starts."""

    group_batch: torch.Tensor
    """[Q] sample of each group."""
    group_first_grid: torch.Tensor
    """[Q] index of the group's first grid."""
    group_t_start: torch.Tensor
    """[Q] first t of the group's window (inclusive)."""

    audio_flat: torch.Tensor
    """[A] flat index of every valid audio token, in sequence order."""
    audio_group: torch.Tensor
    """[A] group whose window holds the audio token, -1 when none (separate audio, audio before a video)."""

    max_grid_size: int

    @property
    def num_grids(self) -> int:
        return int(self.grid_t.numel())

    @property
    def num_groups(self) -> int:
        return int(self.group_batch.numel())

    @property
    def device(self) -> torch.device:
        return self.valid.device

    def grid_index_matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[G, P] flat token indices of each grid padded to the largest grid, and the [G, P] valid mask."""
        g, p = self.num_grids, self.max_grid_size
        index = torch.zeros(g, p, dtype=torch.long, device=self.device)
        present = torch.zeros(g, p, dtype=torch.bool, device=self.device)
        index[self.video_grid, self.video_rank] = self.video_flat
        present[self.video_grid, self.video_rank] = True
        return index, present

    def same_size_as_previous(self) -> torch.Tensor:
        """[G] True where a grid has as many tokens as the grid before it (the first grid: itself).

        Rules comparing a patch with the same patch of the previous grid apply only there."""
        previous = (torch.arange(self.num_grids, device=self.device) - 1).clamp(min=0)
        return self.grid_size == self.grid_size[previous]

    def video_counts(self) -> torch.Tensor:
        """[B] number of valid video tokens per sample."""
        return self.is_video.sum(1)

    def audio_counts(self) -> torch.Tensor:
        """[B] number of valid audio tokens per sample."""
        return self.is_audio.sum(1)


def _check_inputs(
    input_ids: torch.Tensor, temporal: torch.Tensor, attention_mask: torch.Tensor | None
) -> None:
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [batch, seq_len], got shape {tuple(input_ids.shape)}.")
    if temporal.shape != input_ids.shape:
        raise ValueError(
            f"position ids {tuple(temporal.shape)} do not match input_ids {tuple(input_ids.shape)}: pass the "
            "M-RoPE ids of the same batch (3 rows: t, h, w)."
        )
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}."
        )


def require_token_ids(token_ids: TokenIds | None, caller: str) -> TokenIds:
    """`token_ids`, or a ValueError saying where to get them (no family is assumed)."""
    if token_ids is None:
        raise ValueError(
            f"{caller} needs the model family's special token ids: pass token_ids=find_adapter(model).token_ids "
            "(or model=... where accepted). Qwen2.5-Omni and Qwen3-Omni use different ids (audio 151646 vs "
            "151675), so there is no default."
        )
    if not isinstance(token_ids, TokenIds):
        raise ValueError(f"{caller}: token_ids must be a TokenIds, got {type(token_ids).__name__}.")
    return token_ids


def _run_start(flags: torch.Tensor) -> torch.Tensor:
    """For each element, the index of the most recent True in `flags` (flags[0] must be True)."""
    idx = torch.arange(flags.numel(), device=flags.device)
    return torch.where(flags, idx, torch.zeros_like(idx)).cummax(0).values


def build_layout(
    input_ids: torch.Tensor,
    temporal_positions: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    token_ids: TokenIds | None = None,
) -> Layout:
    """Find the grids, groups and audio windows of every sample.

    Args:
        input_ids: [B, N] token ids of the merged sequence.
        temporal_positions: [B, N] the t row (row 0) of the 3-row M-RoPE position ids.
        attention_mask: [B, N], 0 on padding (left or right). None means no padding.
        token_ids: the model family's special token ids (`find_adapter(model).token_ids`). Required: the
            families use different ids, so no default could be right for all of them.
    """
    _check_inputs(input_ids, temporal_positions, attention_mask)
    ids = require_token_ids(token_ids, "build_layout")
    device = input_ids.device
    batch, seq_len = input_ids.shape
    valid = (
        attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    )
    is_video = (input_ids == ids.video) & valid
    is_audio = (input_ids == ids.audio) & valid
    media = is_video | is_audio
    # A run of consecutive video/audio tokens is one video (or one separate audio input).
    run = torch.cumsum(~media, dim=1)
    run_key = torch.arange(batch, device=device).unsqueeze(1) * (seq_len + 1) + run
    temporal = temporal_positions if temporal_positions.is_floating_point() else temporal_positions.long()

    video_flat = torch.nonzero(is_video.reshape(-1)).squeeze(1)
    v_run = run_key.reshape(-1)[video_flat]
    v_t = temporal.reshape(-1)[video_flat]
    # Stable lexicographic sort by (run, t): tokens of a grid stay in sequence order.
    order = torch.argsort(v_t, stable=True)
    order = order[torch.argsort(v_run[order], stable=True)]
    video_flat, v_run, v_t = video_flat[order], v_run[order], v_t[order]

    num_video = video_flat.numel()
    new_grid = torch.ones(num_video, dtype=torch.bool, device=device)
    if num_video > 1:
        new_grid[1:] = (v_run[1:] != v_run[:-1]) | (v_t[1:] != v_t[:-1])
    video_grid = torch.cumsum(new_grid, 0) - 1
    grid_starts = torch.nonzero(new_grid).squeeze(1)
    num_grids = grid_starts.numel()
    video_rank = torch.arange(num_video, device=device) - grid_starts[video_grid]
    grid_size = torch.bincount(video_grid, minlength=num_grids)
    grid_run = v_run[grid_starts]
    grid_t = v_t[grid_starts]
    grid_batch = video_flat[grid_starts] // seq_len

    grid_video_start = torch.ones(num_grids, dtype=torch.bool, device=device)
    if num_grids > 1:
        grid_video_start[1:] = grid_run[1:] != grid_run[:-1]
    rank_in_video = torch.arange(num_grids, device=device) - _run_start(grid_video_start)
    grid_is_first = rank_in_video % 2 == 0
    grid_group = torch.cumsum(grid_is_first, 0) - 1
    group_first_grid = torch.nonzero(grid_is_first).squeeze(1)
    group_batch = grid_batch[group_first_grid]
    group_t_start = grid_t[group_first_grid]
    group_run = grid_run[group_first_grid]

    audio_flat = torch.nonzero(is_audio.reshape(-1)).squeeze(1)
    audio_group = _assign_audio(
        run_key.reshape(-1)[audio_flat], temporal.reshape(-1)[audio_flat], group_run, group_t_start
    )
    max_grid_size = int(grid_size.max()) if num_grids else 0

    return Layout(
        batch_size=batch,
        seq_len=seq_len,
        valid=valid,
        is_video=is_video,
        is_audio=is_audio,
        video_flat=video_flat,
        video_grid=video_grid,
        video_rank=video_rank,
        grid_batch=grid_batch,
        grid_t=grid_t,
        grid_size=grid_size,
        grid_group=grid_group,
        grid_is_first=grid_is_first,
        grid_video_start=grid_video_start,
        group_batch=group_batch,
        group_first_grid=group_first_grid,
        group_t_start=group_t_start,
        audio_flat=audio_flat,
        audio_group=audio_group,
        max_grid_size=max_grid_size,
    )


def _assign_audio(
    audio_run: torch.Tensor, audio_t: torch.Tensor, group_run: torch.Tensor, group_t_start: torch.Tensor
) -> torch.Tensor:
    """Group of each audio token: the last group of the same video whose window starts at or before it.

    Windows are half-open `[t_start, next group's t_start)`; the last group of a video keeps all later
    audio of that video. Audio of a run without video, or before the first grid, gets -1. t may be
    float (Qwen3-Omni): it is replaced by its rank among all t values, which keeps the order exactly.
    """
    if group_run.numel() == 0 or audio_run.numel() == 0:
        return torch.full_like(audio_run, -1)
    t_rank = torch.unique(torch.cat([group_t_start, audio_t]), return_inverse=True)[1]
    group_rank, audio_rank = t_rank[: group_t_start.numel()], t_rank[group_t_start.numel() :]
    shift = 33  # ranks stay below 2**33; runs below 2**30, so keys fit in int64
    group_key = (group_run << shift) + group_rank
    audio_key = (audio_run << shift) + audio_rank
    candidate = torch.searchsorted(group_key, audio_key, right=True) - 1
    safe = candidate.clamp(min=0)
    same_video = (candidate >= 0) & (group_run[safe] == audio_run)
    return torch.where(same_video, safe, torch.full_like(safe, -1))
