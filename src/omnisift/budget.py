"""Token budgets: how many video tokens each grid and how many audio tokens each group keep.

Counts follow the published rules (docs/design.md#budgets): a grid of n tokens drops `floor(n * video_drop)`, a group
with La > 1 audio tokens keeps `La - floor(La * audio_drop)`. Floors are taken in float64, which is
what Python's `int(n * r)` does. Every method uses these counts, so comparisons are at equal budget.

A `retain` target (fraction of a sample's audio + video tokens kept) is solved per sample from the
layout before any selection: keep the given audio drop and find the smallest video drop that meets
the target; if even the largest video drop cannot, drop more audio too; if the target is met with no
video dropped at all (e.g. retain=1.0), lower the audio drop to the smallest that meets it. The
achieved fraction never exceeds the target and is reported in the stats.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from .layout import Layout

__all__ = [
    "Budget",
    "BudgetSettings",
    "SettingError",
    "resolve_budget",
    "solve_budget",
    "validate_drops",
    "video_keep_per_grid",
    "audio_keep_per_group",
]

MAX_DROP = 1.0 - 1e-9
"""Largest drop the solver uses: every grid keeps at least one token (its anchors)."""

_BISECTION_STEPS = 60

logger = logging.getLogger(__name__)


@dataclass
class Budget:
    """Per-sample drop ratios of one batch, float64 tensors of shape [B] (what the methods receive)."""

    video_drop: torch.Tensor
    audio_drop: torch.Tensor
    retain: float | None = None
    """The user's `retain` target as given (methods with their own budget rule, e.g. SEATS' pairs, read it)."""


class SettingError(ValueError):
    """A setting with a value outside its range; `setting` names it (entry points may prefix their own name)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def _ratio(name: str, value: object, low_open: bool, high_open: bool, meaning: str) -> float:
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    low_ok = number > 0.0 if low_open else number >= 0.0
    high_ok = number < 1.0 if high_open else number <= 1.0
    if not (low_ok and high_ok):
        raise SettingError(name, f"{name} must be a number in {interval} ({meaning}), got {value!r}.")
    return number


def validate_drops(video_drop: object, audio_drop: object, retain: object) -> None:
    """Raise a ValueError naming the bad ratio, its value and its valid range (the one check of a budget)."""
    BudgetSettings(video_drop, audio_drop, retain)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BudgetSettings:
    """The budget as set by a user: the two drops and an optional retain target, checked when made.

    `video_drop`, `audio_drop`: fractions of video / audio tokens dropped, in [0, 1).
    `retain`: fraction of each sample's audio+video tokens kept, in (0, 1], or None (then the drops apply).
    """

    video_drop: float
    audio_drop: float
    retain: float | None = None

    def __post_init__(self) -> None:
        meaning = "fraction of {} tokens dropped"
        object.__setattr__(
            self, "video_drop", _ratio("video_drop", self.video_drop, False, True, meaning.format("video"))
        )
        object.__setattr__(
            self, "audio_drop", _ratio("audio_drop", self.audio_drop, False, True, meaning.format("audio"))
        )
        if self.retain is not None:
            retain = _ratio(
                "retain", self.retain, True, False, "fraction of audio+video tokens kept, e.g. 0.25"
            )
            object.__setattr__(self, "retain", retain)

    @property
    def drops_nothing(self) -> bool:
        """True when no token is ever dropped (every call then runs like the stock model)."""
        if self.retain is not None:
            return self.retain >= 1.0
        return self.video_drop == 0 and self.audio_drop == 0


def _floor_drop(sizes: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return torch.floor(sizes.double() * ratio).long()


def grid_prunable(layout: Layout) -> torch.Tensor:
    """[G] True where the grid is pruned: a first grid, or a second grid as large as its first grid."""
    return layout.grid_is_first | layout.same_size_as_previous()


def video_keep_per_grid(layout: Layout, video_drop: torch.Tensor) -> torch.Tensor:
    """[G] video tokens each grid keeps; the drop count of a second grid is its first grid's."""
    drop = _floor_drop(layout.grid_size, video_drop[layout.grid_batch])
    return torch.where(grid_prunable(layout), layout.grid_size - drop, layout.grid_size)


def group_audio_sizes(layout: Layout) -> torch.Tensor:
    """[Q] number of audio tokens in each group's window."""
    grouped = layout.audio_group[layout.audio_group >= 0]
    return torch.bincount(grouped, minlength=layout.num_groups)


def audio_keep_per_group(layout: Layout, audio_drop: torch.Tensor, audio_sizes: torch.Tensor) -> torch.Tensor:
    """[Q] audio tokens each group keeps: all when it has at most one or the count would be 0."""
    keep = audio_sizes - _floor_drop(audio_sizes, audio_drop[layout.group_batch])
    return torch.where((audio_sizes > 1) & (keep > 0), keep, audio_sizes)


def _kept_per_sample(layout: Layout, video_drop: torch.Tensor, audio_drop: torch.Tensor) -> torch.Tensor:
    audio_sizes = group_audio_sizes(layout)
    batch = layout.batch_size
    kept = layout.video_counts() + layout.audio_counts()
    video_removed = layout.grid_size - video_keep_per_grid(layout, video_drop)
    audio_removed = audio_sizes - audio_keep_per_group(layout, audio_drop, audio_sizes)
    kept = kept - torch.zeros(batch, dtype=torch.long, device=layout.device).index_add(
        0, layout.grid_batch, video_removed
    )
    return kept - torch.zeros(batch, dtype=torch.long, device=layout.device).index_add(
        0, layout.group_batch, audio_removed
    )


def _smallest_drop(
    evaluate, low: torch.Tensor, high: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the smallest ratio in [low, high] with evaluate(ratio) <= target, and whether one exists."""
    reachable = evaluate(high) <= target
    lo, hi = low.clone(), high.clone()
    done = evaluate(lo) <= target
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        ok = evaluate(mid) <= target
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return torch.where(done, low, hi), reachable


def resolve_budget(
    layout: Layout, video_drop: float, audio_drop: float, retain: float | None = None
) -> Budget:
    """Per-sample drops: the given ratios (checked here), or the ones solved from `retain`."""
    return solve_budget(layout, BudgetSettings(video_drop, audio_drop, retain))


def solve_budget(layout: Layout, settings: BudgetSettings) -> Budget:
    """Per-sample drops of already checked settings: the ratios, or the ones solved from `retain`."""
    video_drop, audio_drop, retain = settings.video_drop, settings.audio_drop, settings.retain
    batch, device = layout.batch_size, layout.device
    vd = torch.full((batch,), float(video_drop), dtype=torch.float64, device=device)
    ad = torch.full((batch,), float(audio_drop), dtype=torch.float64, device=device)
    if retain is None:
        return Budget(vd, ad)
    total = (layout.video_counts() + layout.audio_counts()).double()
    target = torch.floor(total * float(retain) + 1e-9)
    top = torch.full_like(vd, MAX_DROP)
    vd_solved, reachable = _smallest_drop(
        lambda r: _kept_per_sample(layout, r, ad), torch.zeros_like(vd), top, target
    )
    ad_raised, _ = _smallest_drop(lambda r: _kept_per_sample(layout, top, r), ad, top, target)
    if not bool((_kept_per_sample(layout, top, top) <= target).all()):
        logger.warning(
            "retain=%s is below what some samples can reach (every grid and audio window keeps at least one "
            "token); they keep the fewest tokens possible, see the achieved fraction in the stats",
            retain,
        )
    zero = torch.zeros_like(vd)
    ad_lowered, _ = _smallest_drop(lambda r: _kept_per_sample(layout, zero, r), zero, ad, target)
    video_alone_too_much = vd_solved == 0
    return Budget(
        video_drop=torch.where(reachable, vd_solved, top),
        audio_drop=torch.where(reachable, torch.where(video_alone_too_much, ad_lowered, ad), ad_raised),
        retain=float(retain),
    )
