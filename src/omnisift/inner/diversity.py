"""SEATS Stage I: keep a diverse subset of each 2-second window, weighted by encoder attention.

Per window of n tokens, keep max(1, min(n, round(ratio n))) by greedy max-min selection on
d_ij = (1 - cos(x_i, x_j)) * a_j * 1e6, where a_j is token j's attention statistic from its encoder.
The first pick is the token whose nearest other token is farthest (the largest second-smallest d_ij
over i, the smallest being its distance to itself); each next pick maximises the smallest distance to
the picks so far. All windows run at once on a padded [W, P, P] distance tensor; ties go to the
earlier token.
"""

from __future__ import annotations

import torch

from ..layout import Layout

__all__ = ["window_keep_counts", "diverse_keep", "audio_input_rank"]

_SCALE = 1e6


def window_keep_counts(sizes: torch.Tensor, ratio: float) -> torch.Tensor:
    """[W] max(1, min(n, round(ratio n))) per window size n (Python rounding: half to even)."""
    return torch.tensor(
        [max(1, min(n, round(ratio * n))) for n in sizes.tolist()], dtype=torch.long, device=sizes.device
    )


def diverse_keep(
    features: torch.Tensor, attention: torch.Tensor, window: torch.Tensor, ratio: float
) -> torch.Tensor:
    """[T] bool: the tokens kept by the greedy max-min rule inside each window.

    Args:
        features: [T, D] token features (the LLM input embeddings).
        attention: [T] attention statistic a_j of each token.
        window: [T] window id of each token (any integers; tokens of a window in their sequence order).
        ratio: fraction of each window kept.
    """
    total = features.shape[0]
    keep = torch.zeros(total, dtype=torch.bool, device=features.device)
    if total == 0:
        return keep
    ids, inverse, sizes = torch.unique(window, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.arange(total, device=features.device) - starts[inverse[order]]
    windows, width = ids.numel(), int(sizes.max())
    index = torch.zeros(windows, width, dtype=torch.long, device=features.device)
    present = torch.zeros(windows, width, dtype=torch.bool, device=features.device)
    index[inverse[order], rank] = order
    present[inverse[order], rank] = True

    x = torch.nn.functional.normalize(features.float()[index], dim=-1)
    weight = attention.float()[index]
    distance = (1.0 - x @ x.transpose(1, 2)) * weight.unsqueeze(1) * _SCALE  # [W, i, j]
    inf = torch.tensor(float("inf"), device=features.device)
    by_row = torch.where(present.unsqueeze(2), distance, inf)
    nearest = by_row.sort(dim=1).values[:, 1] if width > 1 else torch.zeros_like(weight)
    nearest = torch.where(torch.isinf(nearest), torch.zeros_like(nearest), nearest)  # one-token windows
    nearest = torch.where(present, nearest, -inf)
    counts = window_keep_counts(sizes, ratio)
    rows = torch.arange(windows, device=features.device)
    first = nearest.argmax(1)
    chosen = torch.zeros_like(present)
    chosen[rows, first] = True
    closest = distance[rows, first]
    for step in range(1, int(counts.max())):
        active = counts > step
        candidate = torch.where(present & ~chosen, closest, -inf)
        pick = candidate.argmax(1)
        chosen[rows[active], pick[active]] = True
        closest = torch.where(active.unsqueeze(1), torch.minimum(closest, distance[rows, pick]), closest)
    keep[index[chosen]] = True
    return keep


def audio_input_rank(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """[A] audio input of each audio token (sequence order) and its rank inside that input.

    An audio input is a maximal set of a sample's audio tokens with no token other than video between
    them: a video's interleaved audio track is one input, a separate audio clip another."""
    flat_valid = layout.valid.reshape(-1)
    other = flat_valid & ~layout.is_video.reshape(-1) & ~layout.is_audio.reshape(-1)
    seen_other = torch.cumsum(other.long(), 0)
    audio = layout.audio_flat
    if audio.numel() == 0:
        return audio.clone(), audio.clone()
    sample = torch.div(audio, layout.seq_len, rounding_mode="floor")
    marker = seen_other[audio]
    new = torch.ones_like(audio, dtype=torch.bool)
    new[1:] = (sample[1:] != sample[:-1]) | (marker[1:] != marker[:-1])
    input_id = torch.cumsum(new.long(), 0) - 1
    starts = torch.nonzero(new).squeeze(1)
    rank = torch.arange(audio.numel(), device=audio.device) - starts[input_id]
    return input_id, rank
