"""The OmniSIFT selection rules (docs/design.md#selection-rules) written literally: one Python iteration per 2-second group.

Written from the spec, independently of the library's batched `keep_mask`, and run the way the published
code runs them: per group, full-length ``nonzero`` scans for its grids and its audio window, sizes read
back to the host, the selector called on that group alone. One implementation, two uses: the tests check
`keep_mask` against it token for token, and the selection benchmark times it as the published-style
baseline. Not for production use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import DEFAULT_AUDIO_DROP, DEFAULT_VIDEO_DROP
from ..layout import TokenIds, require_token_ids

__all__ = ["literal_keep_mask"]


def _media_runs(is_media: torch.Tensor) -> list[tuple[int, int]]:
    """[start, stop) of each maximal run of consecutive True positions (one video with its audio)."""
    flags = is_media.int()
    edges = torch.diff(flags, prepend=flags.new_zeros(1), append=flags.new_zeros(1))
    starts = torch.nonzero(edges == 1).squeeze(1).tolist()
    stops = torch.nonzero(edges == -1).squeeze(1).tolist()
    return list(zip(starts, stops, strict=True))


def _select_run(
    x: torch.Tensor,
    tok: torch.Tensor,
    t: torch.Tensor,
    keep: torch.Tensor,
    max_pos: int,
    selector: torch.nn.Module,
    video_drop: float,
    audio_drop: float,
    ids: TokenIds,
) -> None:
    """Apply the rules to one run of video/audio tokens, writing into its `keep` slice."""
    is_video, is_audio = tok == ids.video, tok == ids.audio
    grid_ts = torch.unique(t[is_video]).tolist()
    for g in range(0, len(grid_ts), 2):
        f1 = torch.nonzero(is_video & (t == grid_ts[g])).squeeze(1)
        x1 = x[f1]
        n = f1.numel()
        k = int(n * video_drop)
        if k:
            sims = F.cosine_similarity(x1, x1.mean(0, keepdim=True), dim=-1)
            keep[f1[sims.topk(k).indices]] = False
        f2 = f1[:0]
        if g + 1 < len(grid_ts):
            f2 = torch.nonzero(is_video & (t == grid_ts[g + 1])).squeeze(1)
            if f2.numel() == n and k:
                sims = F.cosine_similarity(x[f2], x1, dim=-1)
                keep[f2[sims.topk(k).indices]] = False
        end = grid_ts[g + 2] if g + 2 < len(grid_ts) else max_pos + 1
        audio = torch.nonzero(is_audio & (t >= grid_ts[g]) & (t < end)).squeeze(1)
        group_video = torch.cat([f1, f2])
        anchors = group_video[keep[group_video]]
        la = audio.numel()
        n_keep = la - int(la * audio_drop)
        if anchors.numel() == 0 or la <= 1 or audio_drop == 0 or n_keep <= 0:
            continue
        scores = selector(x[anchors].unsqueeze(0), x[audio].unsqueeze(0))[0]
        dropped = torch.ones(la, dtype=torch.bool, device=x.device)
        dropped[scores.topk(n_keep).indices] = False
        keep[audio[dropped]] = False


def literal_keep_mask(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    selector: torch.nn.Module,
    video_drop: float = DEFAULT_VIDEO_DROP,
    audio_drop: float = DEFAULT_AUDIO_DROP,
    token_ids: TokenIds | None = None,
) -> torch.Tensor:
    """[B, N] keep mask of docs/design.md#selection-rules: one sample, video run and 2-second group at a time.

    A run is a maximal stretch of consecutive (unpadded) video and audio tokens; runs without video are
    kept whole. Audio windows end at the next group's first grid, the last one past the largest position.
    """
    ids = require_token_ids(token_ids, "literal_keep_mask")
    keep = torch.ones_like(input_ids, dtype=torch.bool)
    for b in range(input_ids.shape[0]):
        tok = input_ids[b]
        valid = torch.ones_like(tok, dtype=torch.bool) if attention_mask is None else attention_mask[b].bool()
        if not bool(valid.any()):
            continue
        max_pos = int(position_ids[:, b][:, valid].max())
        is_media = ((tok == ids.video) | (tok == ids.audio)) & valid
        for start, stop in _media_runs(is_media):
            if not bool((tok[start:stop] == ids.video).any()):
                continue
            _select_run(
                inputs_embeds[b, start:stop],
                tok[start:stop],
                position_ids[0, b, start:stop],
                keep[b, start:stop],
                max_pos,
                selector,
                video_drop,
                audio_drop,
                ids,
            )
    return keep
