"""Budgets of the inner-LLM methods: SEATS' retention pairs, its per-step keep ratios, FastV's one-step ratio.

SEATS states its budget as a layer-averaged retention R (the fraction of each modality's tokens present,
averaged over the LLM's layers), and R selects a (video, audio) pair from a fixed table. Stage I keeps
`STAGE_ONE_SCALE` x r of each modality before the LLM; the three drops inside it then bring the layer
average down to r, with exponentially growing drops (weights e^0, e^1, e^2) whose total is found by
bisection. Layers from the late layer on hold no audio or video, so they count 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "SEATS_PAIRS",
    "STAGE_ONE_SCALE",
    "retention_pair",
    "seats_pair",
    "block_schedule",
    "fastv_ratio",
    "reallocate_to_audio",
]

SEATS_PAIRS: dict[float, tuple[float, float]] = {
    0.35: (0.30, 0.65),
    0.25: (0.20, 0.55),
    0.15: (0.10, 0.45),
    0.10: (0.06, 0.35),
}
"""User retention R -> layer-averaged (video, audio) retention, as SEATS defines its budgets."""

STAGE_ONE_SCALE = 1.4
"""Stage I keeps this multiple of each modality's layer-averaged retention (capped at 1)."""

_BISECTION_STEPS = 50
_DROP_WEIGHTS = tuple(math.exp(i) for i in range(3))


def seats_pair(retain: float) -> tuple[float, float] | None:
    """SEATS' layer-averaged (video, audio) pair for `retain`, or None when `retain` is not in its table."""
    for key, pair in SEATS_PAIRS.items():
        if abs(float(retain) - key) < 1e-9:
            return pair
    return None


def retention_pair(
    retain: float | None, video_retain: float | None = None, audio_retain: float | None = None
) -> tuple[float, float]:
    """The layer-averaged (video, audio) retention of a run: an explicit pair, else SEATS' pair for `retain`."""
    if video_retain is not None or audio_retain is not None:
        if video_retain is None or audio_retain is None:
            raise ValueError(
                "set both video_retain and audio_retain (layer-averaged fractions kept), or neither and use "
                f"retain in {sorted(SEATS_PAIRS)}."
            )
        for name, value in (("video_retain", video_retain), ("audio_retain", audio_retain)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1] (layer-averaged fraction kept), got {value!r}.")
        return float(video_retain), float(audio_retain)
    pair = None if retain is None else seats_pair(retain)
    if pair is not None:
        return pair
    raise ValueError(
        f"retain={retain!r} is not one of SEATS' budgets {sorted(SEATS_PAIRS)} (each selects a layer-averaged "
        "(video, audio) pair: 0.35 -> (0.30, 0.65), 0.25 -> (0.20, 0.55), 0.15 -> (0.10, 0.45), 0.10 -> "
        "(0.06, 0.35)); pick one, or set the method's video_retain and audio_retain."
    )


def _levels(start: float, total_drop: float) -> list[float]:
    weights = [w / sum(_DROP_WEIGHTS) for w in _DROP_WEIGHTS]
    levels = [start]
    for weight in weights:
        levels.append(levels[-1] - total_drop * weight)
    return levels


def block_schedule(
    drop_layers: Sequence[int],
    late_layer: int,
    num_layers: int,
    retain: float,
    scale: float = STAGE_ONE_SCALE,
) -> list[float]:
    """Keep ratio of each of the three drops (tokens after / tokens before), rounded to 4 decimals.

    `drop_layers` are the 0-based first layers of each reduced set and `late_layer` the first layer
    without audio/video. The token level starts at `scale * retain` and the layer-weighted level over
    the `num_layers` layers equals `retain * num_layers`.
    """
    if len(drop_layers) != 3:
        raise ValueError(f"SEATS' schedule has exactly 3 drop layers, got {list(drop_layers)}.")
    bounds = [0, *drop_layers, late_layer]
    segments = [b - a for a, b in zip(bounds, bounds[1:])]
    start = scale * retain
    target = retain * num_layers

    def area(fraction: float) -> float:
        return sum(length * level for length, level in zip(segments, _levels(start, fraction * start)))

    low, high = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2
        if area(mid) > target:
            low = mid
        else:
            high = mid
    levels = _levels(start, (low + high) / 2 * start)
    return [round(after / before, 4) if before > 0 else 0.0 for before, after in zip(levels, levels[1:])]


def fastv_ratio(retain: float, num_layers: int, k: int) -> float:
    """Keep ratio at FastV's single drop before layer `k` so the layer average is `retain`:
    (retain L - k) / (L - k). It is <= 0 when k full layers already exceed the budget (then 1 token stays)."""
    return (retain * num_layers - k) / (num_layers - k)


def reallocate_to_audio(
    video_retain: float, audio_retain: float, video_count: int, audio_count: int, video_floor: float = 0.05
) -> tuple[float, float]:
    """FastV's reallocation: keep the total r_v N_v + r_a N_a, give audio all of its tokens and video the rest;
    when video would fall below `video_floor`, video gets the floor and audio the remainder."""
    total = video_retain * video_count + audio_retain * audio_count
    if video_count == 0:
        return video_retain, min(1.0, total / audio_count) if audio_count else audio_retain
    video = (total - audio_count) / video_count
    if video >= video_floor:
        return min(1.0, video), 1.0
    audio = (total - video_floor * video_count) / audio_count if audio_count else 1.0
    return video_floor, max(0.0, min(1.0, audio))
