"""Which tokens an inner-LLM drop keeps, given one score per current token (SEATS Stage II, FastV, FastV-om).

All functions work on one sample's current sequence (1-D tensors over its slots); text, special tokens
and padding are always kept. Counts are small Python integers, rounded with Python's `round` (half to
even), as SEATS computes them.
"""

from __future__ import annotations

import torch

__all__ = ["runs", "top_k_keep", "seats_window_keep", "seeded_draw"]

WINDOW_TEMPERATURE = 0.1
"""Temperature of the softmax over window importances (SEATS Stage II)."""


def runs(flags: torch.Tensor) -> list[torch.Tensor]:
    """Index tensors of the maximal runs of consecutive True slots, in order."""
    index = torch.nonzero(flags).squeeze(1)
    if index.numel() == 0:
        return []
    breaks = torch.nonzero(index[1:] != index[:-1] + 1).squeeze(1) + 1
    return list(torch.tensor_split(index, breaks.tolist()))


def keep_count(ratio: float, count: int) -> int:
    """max(1, round(ratio * count)) tokens of a non-empty modality (1 when the ratio is <= 0), at most count."""
    if count == 0:
        return 0
    return min(count, max(1, round(ratio * count)))


def top_k_keep(scores: torch.Tensor, candidates: torch.Tensor, k: int) -> torch.Tensor:
    """[S] bool: the `k` highest-scoring of `candidates` (an index tensor)."""
    keep = torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
    if k > 0 and candidates.numel():
        chosen = torch.topk(scores[candidates], min(k, candidates.numel())).indices
        keep[candidates[chosen]] = True
    return keep


def seeded_draw(candidates: torch.Tensor, k: int, seed: int, length: int) -> torch.Tensor:
    """[length] bool: `k` of `candidates` drawn uniformly with a generator seeded by `seed` alone, so a
    sample's draw does not depend on its batch."""
    keep = torch.zeros(length, dtype=torch.bool, device=candidates.device)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(candidates.numel(), generator=generator)[:k]
    keep[candidates[order.to(candidates.device)]] = True
    return keep


def _fix_total(budgets: list[int], sizes: list[int], total: int) -> list[int]:
    """Move the window budgets to sum exactly to `total`: +1 on the smallest window that has room, -1 on the
    largest that keeps at least one token, one at a time."""
    budgets = list(budgets)
    while sum(budgets) < total:
        room = [w for w in range(len(budgets)) if budgets[w] < sizes[w]]
        if not room:
            break
        budgets[min(room, key=lambda w: budgets[w])] += 1
    while sum(budgets) > total:
        spare = [w for w in range(len(budgets)) if budgets[w] > 1]
        if not spare:
            break
        budgets[max(spare, key=lambda w: budgets[w])] -= 1
    return budgets


def _split(budget: int, v_weight: float, a_weight: float, n_video: int, n_audio: int) -> tuple[int, int]:
    """Split one window's budget between its video and audio tokens."""
    denom = v_weight + a_weight
    fraction = v_weight / denom if denom > 0 else (1.0 if n_audio == 0 else 0.0)
    video = min(round(budget * fraction), n_video)
    audio = min(budget - video, n_audio)
    left = budget - video - audio
    grow = min(left, n_video - video)
    video, left = video + grow, left - grow
    audio += min(left, n_audio - audio)
    if n_video and video == 0:
        video = 1
        if audio > 1 and video + audio > budget:
            audio -= 1
    if n_audio and audio == 0:
        audio = 1
        if video > 1 and video + audio > budget:
            video -= 1
    return video, audio


def seats_window_keep(
    scores: torch.Tensor, is_video: torch.Tensor, is_audio: torch.Tensor, keep_video: float, keep_audio: float
) -> torch.Tensor:
    """[S] bool keep mask of one SEATS Stage II drop on one sample (media only: text is added by the caller).

    Windows pair the i-th contiguous video run with the i-th audio run. Each modality keeps about
    `keep_* x` its current count; windows share the total by softmax(mean score / 0.1) per modality, and
    inside a window each modality keeps its top-scoring tokens. With one window, or one modality absent,
    each modality keeps its global top-k.
    """
    n_video, n_audio = int(is_video.sum()), int(is_audio.sum())
    k_video, k_audio = keep_count(keep_video, n_video), keep_count(keep_audio, n_audio)
    video_runs, audio_runs = runs(is_video), runs(is_audio)
    windows = max(len(video_runs), len(audio_runs))
    if windows <= 1 or not video_runs or not audio_runs:
        video_keep = top_k_keep(scores, torch.nonzero(is_video).squeeze(1), k_video)
        return video_keep | top_k_keep(scores, torch.nonzero(is_audio).squeeze(1), k_audio)
    empty = is_video.new_zeros(0, dtype=torch.long)
    video_runs = video_runs + [empty] * (windows - len(video_runs))
    audio_runs = audio_runs + [empty] * (windows - len(audio_runs))
    scores32 = scores.float()

    def weights(parts: list[torch.Tensor]) -> list[float]:
        present = [i for i, part in enumerate(parts) if part.numel()]
        importance = torch.stack([scores32[parts[i]].mean() for i in present])
        soft = torch.softmax(importance / WINDOW_TEMPERATURE, 0).tolist()
        out = [0.0] * len(parts)
        for i, value in zip(present, soft):
            out[i] = value
        return out

    w_video, w_audio = weights(video_runs), weights(audio_runs)
    total = k_video + k_audio
    sizes = [v.numel() + a.numel() for v, a in zip(video_runs, audio_runs)]
    budgets = [
        min(size, max(1, round((wv + wa) / 2 * total))) for wv, wa, size in zip(w_video, w_audio, sizes)
    ]
    budgets = _fix_total(budgets, sizes, total)
    keep = torch.zeros_like(is_video)
    for w in range(windows):
        video, audio = _split(
            budgets[w],
            w_video[w] * k_video,
            w_audio[w] * k_audio,
            video_runs[w].numel(),
            audio_runs[w].numel(),
        )
        keep |= top_k_keep(scores, video_runs[w], video)
        keep |= top_k_keep(scores, audio_runs[w], audio)
    return keep
