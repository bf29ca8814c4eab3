"""Building blocks shared by the selection methods (methods import this module, never each other).

- Grid gathering, drop-by-score and keep-mask assembly used by every method.
- OmniSIFT's two stages (STVP scores, VGAS audio keep, the straight-through factor) and the frame of
  every method that scores audio with the trained selector (`SelectorMethod`: OmniSIFT and its ablations).
- Seeded uniform sampling and the frame of the video-only baselines (`VideoOnlyMethod`: audio sampled
  uniformly per group at the budget's audio drop, docs/design.md#budgets).
- Exact integer count fitting (`fit_counts`) for methods that spread a budget their own way.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ..budget import Budget, audio_keep_per_group, group_audio_sizes, video_keep_per_grid
from ..layout import Layout
from ..ops import cosine_rows, descending_rank, gather_rows, group_slots, top_per_group
from .base import Selection, SelectionMethod

if TYPE_CHECKING:
    from ..models.base import ModelAdapter

__all__ = [
    "SelectorMethod",
    "VideoOnlyMethod",
    "cpu_generator",
    "drop_highest",
    "fit_counts",
    "gather_grids",
    "grid_presence",
    "grid_video_index",
    "keep_all",
    "keep_from_parts",
    "per_video_targets",
    "previous_grid_cosine",
    "spatial_cosine",
    "straight_through",
    "stvp_scores",
    "uniform_audio_keep",
    "uniform_scores",
    "vgas_keep",
]


def keep_all(layout: Layout, inputs_embeds: torch.Tensor) -> Selection:
    """The selection of a batch without video: everything kept."""
    return Selection(keep=torch.ones_like(layout.valid), inputs_embeds=inputs_embeds)


def has_grouped_audio(layout: Layout) -> bool:
    return layout.audio_group.numel() > 0 and bool((layout.audio_group >= 0).any())


def drops_audio(budget: Budget) -> bool:
    return bool((budget.audio_drop > 0).any())


def gather_grids(
    layout: Layout, flat_embeds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[G, P, D] video tokens grid by grid (zeros where a grid is shorter), the [G, P] mask and [G, P] index."""
    index, present = layout.grid_index_matrix()
    grids = flat_embeds[index]
    if layout.video_flat.numel() != present.numel():
        grids.masked_fill_(~present.unsqueeze(-1), 0)
    return grids, present, index


def gather_pairs(
    layout: Layout, flat_embeds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Video tokens in pair slots: group q's first grid in slot 2q, its second grid in slot 2q + 1.

    Returns the [2Q, P, D] tokens (zeros where absent; a reused CPU buffer, see `gather_rows`), the
    [2Q, P] flat index and present mask, and the [G] slot of each grid. Pair slots let each rule read
    only the grids it applies to, through strided views.
    """
    slots, width = 2 * layout.num_groups, layout.max_grid_size
    slot_of_grid = 2 * layout.grid_group + (~layout.grid_is_first).long()
    token_slot = slot_of_grid[layout.video_grid]
    index = torch.zeros(slots, width, dtype=torch.long, device=layout.device)
    present = torch.zeros(slots, width, dtype=torch.bool, device=layout.device)
    index[token_slot, layout.video_rank] = layout.video_flat
    present[token_slot, layout.video_rank] = True
    pairs = gather_rows(flat_embeds, index)
    if layout.video_flat.numel() != present.numel():
        pairs.masked_fill_(~present.unsqueeze(-1), 0)
    return pairs, index, present, slot_of_grid


def stvp_pair_scores(pairs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """[2Q, P] redundancy of each video token (higher = more redundant): cosine to its grid's mean in
    first-grid slots, cosine to the same patch of the group's unpruned first grid in second-grid slots."""
    slots, width, _ = pairs.shape
    first, second = pairs[0::2], pairs[1::2]
    norms = torch.linalg.vector_norm(pairs, dim=-1)
    first_norms, second_norms = norms[0::2], norms[1::2]
    sizes = present[0::2].sum(1, keepdim=True).clamp_min(1).to(pairs.dtype)
    means = first.sum(1) / sizes
    spatial = cosine_rows(
        torch.bmm(first, means.unsqueeze(-1)).squeeze(-1),
        first_norms,
        torch.linalg.vector_norm(means, dim=-1, keepdim=True),
    )
    temporal = cosine_rows(torch.linalg.vecdot(second, first), second_norms, first_norms)
    return torch.stack([spatial, temporal], 1).view(slots, width)


def periodic_grids(
    layout: Layout, index: torch.Tensor, present: torch.Tensor
) -> tuple[int, int, int, int, int] | None:
    """Where the grids sit when the batch is one video laid out at a constant period, else None.

    The processor writes each 2-second chunk as [first grid][second grid][audio]; at a constant frame
    rate (one clip, batch 1) group q's first grid starts at `start + q * stride` and its second grid
    right after it, so both can be read as strided views of the embeddings, without a gather.
    Returns (start, stride, grid size, groups, groups with a second grid). At most 6 host syncs,
    whatever the number of chunks.
    """
    num_grids, size = index.shape
    groups = layout.num_groups
    if num_grids == 0 or size == 0 or not bool(present.all()):
        return None
    seconds = num_grids - groups
    first = layout.group_first_grid
    start = index[0, 0]
    stride = index[first[1], 0] - start if groups > 1 else torch.zeros_like(start)
    expected = start + torch.arange(groups, device=index.device).unsqueeze(1) * stride
    expected = expected + torch.arange(size, device=index.device)
    ok = torch.equal(index[first], expected)
    if ok and seconds:
        second = first[:seconds] + 1
        ok = bool((~layout.grid_is_first[second]).all()) and torch.equal(
            index[second], expected[:seconds] + size
        )
    if not ok:
        return None
    return int(start), int(stride), size, groups, seconds


def stvp_scores_periodic(
    layout: Layout, flat_embeds: torch.Tensor, start: int, stride: int, size: int, groups: int, seconds: int
) -> torch.Tensor:
    """[G, P] STVP scores read through strided views (see `periodic_grids`): no gather, and in fp32 no
    [Q, P, D] product either."""
    d = flat_embeds.shape[-1]
    flat_embeds = flat_embeds.detach()
    first = flat_embeds.as_strided((groups, size, d), (stride * d, d, 1), start * d)
    norms1 = torch.linalg.vector_norm(first, dim=-1)
    means = first.sum(1) / size
    if flat_embeds.dtype == torch.float32:  # means @ grid^T reads the strided grid once, without a copy
        dots = torch.bmm(means.unsqueeze(1), first.transpose(1, 2)).squeeze(1)
    else:
        dots = torch.bmm(first, means.unsqueeze(-1)).squeeze(-1)
    spatial = cosine_rows(dots, norms1, torch.linalg.vector_norm(means, dim=-1, keepdim=True))
    scores = spatial.new_empty(layout.num_grids, size)
    scores[layout.group_first_grid] = spatial
    if seconds:
        if flat_embeds.dtype == torch.float32:
            # 2x2 Gram blocks of (first-grid row, same patch of the second grid): dot and norm in one pass.
            rows = (seconds - 1) * stride + size
            pairs = flat_embeds.as_strided((rows, 2, d), (d, size * d, 1), start * d)
            gram = torch.bmm(pairs, pairs.transpose(1, 2))
            at = torch.arange(seconds, device=flat_embeds.device).unsqueeze(1) * stride
            gram = gram[(at + torch.arange(size, device=flat_embeds.device)).reshape(-1)]
            dots = gram[:, 0, 1].view(seconds, size)
            norms2 = gram[:, 1, 1].clamp_min(0).sqrt().view(seconds, size)
        else:
            second = flat_embeds.as_strided((seconds, size, d), (stride * d, d, 1), (start + size) * d)
            norms2 = torch.linalg.vector_norm(second, dim=-1)
            dots = torch.linalg.vecdot(second, first[:seconds])
        scores[layout.group_first_grid[:seconds] + 1] = cosine_rows(dots, norms2, norms1[:seconds])
    return scores


def stvp_scores(layout: Layout, flat_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """STVP drop priority of every video token, in grid order: ([G, P] scores, present mask, flat index).

    A second grid of another size than its first grid gets no temporal score; its budget keeps it whole.
    """
    with torch.no_grad():
        index, present = layout.grid_index_matrix()
        pattern = periodic_grids(layout, index, present)
        if pattern is not None:
            return stvp_scores_periodic(layout, flat_embeds, *pattern), present, index
        pairs, index, present, slot_of_grid = gather_pairs(layout, flat_embeds)
        scores = stvp_pair_scores(pairs, present)
    return scores[slot_of_grid], present[slot_of_grid], index[slot_of_grid]


def drop_highest(scores: torch.Tensor, present: torch.Tensor, keep_counts: torch.Tensor) -> torch.Tensor:
    """[G, P] True for the tokens kept when each grid drops its `size - keep` highest scores."""
    scores = scores.masked_fill(~present, float("-inf"))
    drop_counts = present.sum(1) - keep_counts
    return present & (descending_rank(scores) >= drop_counts.unsqueeze(1))


def vgas_keep(
    layout: Layout,
    flat_embeds: torch.Tensor,
    video_kept: torch.Tensor,
    video_index: torch.Tensor,
    budget: Budget,
    selector: nn.Module,
    anchors_from_audio: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score grouped audio with the selector and keep the top of each group.

    Returns the flat indices of grouped audio tokens, whether each is kept, and their scores.
    With `anchors_from_audio` the audio tokens serve as their own keys (the audio-only ablation).
    """
    grouped = layout.audio_group >= 0
    audio_flat = layout.audio_flat[grouped]
    audio_group = layout.audio_group[grouped]
    num_groups = layout.num_groups
    audio = flat_embeds[audio_flat]
    if anchors_from_audio:
        anchors, anchor_group = audio, audio_group
    else:
        grid_of_slot = torch.arange(layout.num_grids, device=layout.device).unsqueeze(1).expand_as(video_kept)
        # The encoders feeding these tokens are frozen in every recipe, so the selector's inputs need no
        # gradient; the reused buffer spares the page faults of a fresh copy of all anchors.
        anchors = gather_rows(flat_embeds, video_index[video_kept])
        anchor_group = layout.grid_group[grid_of_slot[video_kept]]
    scores = selector.score_groups(anchors, anchor_group, audio, audio_group, num_groups)
    if torch.isnan(scores).any():
        raise ValueError(
            "the selector returned NaN scores: check the selector weights and that the embeddings are finite "
            "(in fp16, overflow is a common cause; use bf16 or fp32)."
        )
    sizes = group_audio_sizes(layout)
    anchor_counts = torch.bincount(anchor_group, minlength=num_groups)
    keep_counts = torch.where(
        anchor_counts > 0, audio_keep_per_group(layout, budget.audio_drop, sizes), sizes
    )
    return audio_flat, top_per_group(scores, audio_group, keep_counts, num_groups), scores


def straight_through(
    inputs_embeds: torch.Tensor, audio_flat: torch.Tensor, audio_kept: torch.Tensor, scores: torch.Tensor
) -> torch.Tensor:
    """Multiply kept audio rows by `(1 - s).detach() + s` (value exactly 1) so gradients reach the scores."""
    batch, seq_len, _ = inputs_embeds.shape
    kept_scores = scores[audio_kept].to(inputs_embeds.dtype)
    factor = (torch.ones_like(kept_scores) - kept_scores).detach() + kept_scores
    full = torch.ones(batch * seq_len, dtype=inputs_embeds.dtype, device=inputs_embeds.device)
    full = full.index_put((audio_flat[audio_kept],), factor)
    return inputs_embeds * full.view(batch, seq_len, 1)


def keep_from_parts(
    layout: Layout,
    video_kept: torch.Tensor,
    video_index: torch.Tensor,
    audio_flat: torch.Tensor | None = None,
    audio_kept: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, N] keep mask: everything but the dropped video slots and dropped audio tokens."""
    keep = torch.ones(layout.batch_size * layout.seq_len, dtype=torch.bool, device=layout.device)
    keep[video_index[~video_kept & grid_presence(layout)]] = False
    if audio_flat is not None and audio_kept is not None:
        keep[audio_flat[~audio_kept]] = False
    return keep.view(layout.batch_size, layout.seq_len)


def previous_grid_cosine(grids: torch.Tensor, norms: torch.Tensor, lag: int = 1) -> torch.Tensor:
    """[G, P] cosine of each slot to the same slot `lag` grids earlier (0 for the first `lag` grids)."""
    g, p, d = grids.shape
    out = grids.new_zeros(g, p)
    if g > lag:
        # Per-token dot products as a batched (1 x D) @ (D x 1): no [G, P, D] temporary.
        dots = torch.bmm(grids[lag:].reshape(-1, 1, d), grids[:-lag].reshape(-1, d, 1)).view(g - lag, p)
        out[lag:] = cosine_rows(dots, norms[lag:], norms[:-lag])
    return out


def spatial_cosine(layout: Layout, grids: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """[G, P] cosine of each token to the mean of its grid."""
    means = grids.sum(1) / layout.grid_size.clamp_min(1).unsqueeze(1).to(grids.dtype)
    dots = torch.bmm(grids, means.unsqueeze(-1)).squeeze(-1)
    return cosine_rows(dots, norms, torch.linalg.vector_norm(means, dim=-1, keepdim=True))


AUDIO_STREAM = 0x5EED
"""Offset of the audio generator's seed, so audio draws do not depend on how many video tokens exist."""


def cpu_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`; raises a clear error for a non-integer seed."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    return torch.Generator(device="cpu").manual_seed(seed)


def uniform_scores(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform random scores drawn on the CPU (device-independent), moved to `device`."""
    return torch.rand(shape, generator=generator, dtype=torch.float64).to(device)


def grid_presence(layout: Layout) -> torch.Tensor:
    """[G, P] True on the slots that hold a video token."""
    slots = torch.arange(layout.max_grid_size, device=layout.device)
    return slots.unsqueeze(0) < layout.grid_size.unsqueeze(1)


def uniform_audio_keep(
    layout: Layout, budget: Budget, seed: int
) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """Seeded uniform audio dropping within each group, at OmniSIFT's per-group counts.

    Returns the flat indices of the grouped audio tokens and whether each is kept, or (None, None) when
    no audio is dropped (no grouped audio, or `audio_drop` is 0 for every sample).
    """
    grouped = layout.audio_group >= 0
    if not bool(grouped.any()) or not bool((budget.audio_drop > 0).any()):
        return None, None
    audio_flat = layout.audio_flat[grouped]
    audio_group = layout.audio_group[grouped]
    counts = audio_keep_per_group(layout, budget.audio_drop, group_audio_sizes(layout))
    scores = uniform_scores((audio_flat.numel(),), cpu_generator(seed + AUDIO_STREAM), layout.device)
    return audio_flat, top_per_group(scores, audio_group, counts, layout.num_groups)


_BISECTION_STEPS = 64


def largest_remainder(
    quotas: torch.Tensor, low: torch.Tensor, high: torch.Tensor, segment: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Integer counts in [low, high] close to `quotas`, summing to `target` in every segment.

    Floors the quotas, then gives one more to the elements with the largest fractional parts (or one less
    to the smallest, when the floors overshoot) until each segment's sum is its target. Segments must be
    contiguous and the target reachable (sum(low) <= target <= sum(high)).
    """
    num = target.numel()
    counts = torch.minimum(torch.maximum(torch.floor(quotas).long(), low), high)
    have = torch.zeros(num, dtype=torch.long, device=quotas.device).index_add(0, segment, counts)
    missing = target - have
    frac = (quotas - counts.double()).clamp(-1.0, 1.0)
    up_rank = _rank_in_segment(torch.where(counts < high, frac, float("-inf")), segment, num)
    counts = counts + ((up_rank < missing[segment]) & (counts < high)).long()
    down_rank = _rank_in_segment(torch.where(counts > low, -frac, float("-inf")), segment, num)
    counts = counts - ((down_rank < (-missing).clamp_min(0)[segment]) & (counts > low)).long()
    return counts


def _rank_in_segment(values: torch.Tensor, segment: torch.Tensor, num: int) -> torch.Tensor:
    """Descending rank of each value inside its (contiguous) segment, ties to the earlier element."""
    slot, lengths = group_slots(segment, num)
    padded = values.new_full((num, int(lengths.max())), float("-inf"))
    padded[segment, slot] = values
    return descending_rank(padded)[segment, slot]


def fit_counts(
    quota_of: Callable[[torch.Tensor], torch.Tensor],
    segment: torch.Tensor,
    target: torch.Tensor,
    low: float,
    high: float,
    increasing: bool,
    min_count: torch.Tensor,
    max_count: torch.Tensor,
) -> torch.Tensor:
    """Per-element integer counts whose per-segment sums equal `target`.

    `quota_of(x)` maps one parameter per segment ([S] float64) to float quotas per element, clamped to
    [min_count, max_count] here and monotone in x (increasing or not). x is found in [low, high] by
    bisection so that the quotas add up to the target, then the quotas are rounded by largest remainder.
    """
    num = target.numel()
    device = target.device

    def total(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quotas = torch.minimum(torch.maximum(quota_of(x), min_count.double()), max_count.double())
        return quotas, torch.zeros(num, dtype=torch.float64, device=device).index_add(0, segment, quotas)

    lo = torch.full((num,), float(low), dtype=torch.float64, device=device)
    hi = torch.full((num,), float(high), dtype=torch.float64, device=device)
    goal = target.double()
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        _, sums = total(mid)
        above = sums >= goal if increasing else sums <= goal
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    quotas, _ = total(hi)
    return largest_remainder(quotas, min_count, max_count, segment, target)


def grid_video_index(layout: Layout) -> tuple[torch.Tensor, int]:
    """[G] index of the video each grid belongs to, and the number of videos in the batch."""
    video = torch.cumsum(layout.grid_video_start.long(), 0) - 1
    return video, int(layout.grid_video_start.sum())


def per_video_targets(layout: Layout, budget: Budget) -> tuple[torch.Tensor, int, torch.Tensor]:
    """[G] video of each grid, the number of videos, and [V] video tokens each video keeps (omnisift's
    total), for methods that spread a video's budget over its grids their own way."""
    video_of_grid, num_videos = grid_video_index(layout)
    target = torch.zeros(num_videos, dtype=torch.long, device=layout.device).index_add(
        0, video_of_grid, video_keep_per_grid(layout, budget.video_drop)
    )
    return video_of_grid, num_videos, target


SelectorSource = nn.Module | str | Path | None


@dataclass
class SelectorMethod(SelectionMethod):
    """A video rule (`video_redundancy`), then the trained selector keeps each group's audio (VGAS).

    `selector` is the trained audio selector: a module, a selector `.safetensors` file or a checkpoint
    folder with `thinker.compressor.*` keys (loaded in `prepare`, sized from the model). The caller's
    module is never modified: when the embeddings come in another dtype or device (e.g. after
    `model.to(torch.bfloat16)`), inference runs on a converted copy.
    """

    uses = "trained selector"
    anchors_from_audio: ClassVar[bool] = False

    selector: SelectorSource = None
    """The trained audio selector (required whenever audio is dropped)."""

    def __post_init__(self) -> None:
        if self.selector is not None and not isinstance(self.selector, (nn.Module, str, Path)):
            raise ValueError(
                f"selector must be an nn.Module, a .safetensors file or a checkpoint folder, got "
                f"{type(self.selector).__name__}."
            )
        if isinstance(self.selector, (str, Path)) and not Path(self.selector).exists():
            raise ValueError(f"selector path {self.selector} does not exist.")
        self._module: nn.Module | None = self.selector if isinstance(self.selector, nn.Module) else None
        self._converted: tuple[tuple[torch.dtype, torch.device], nn.Module] | None = None

    def check_budget(self, video_drop: float, audio_drop: float, retain: float | None) -> None:
        if self.selector is None and (audio_drop > 0 or retain is not None):
            raise ValueError(
                f"method {self.name!r} drops audio with a trained selector: pass selector=... (the OmniSIFT "
                "checkpoint folder or a selector .safetensors file), or set audio_drop=0 to prune video only."
            )

    def prepare(self, adapter: ModelAdapter) -> None:
        from ..selector import source_selector

        if self.selector is not None:
            self._module = source_selector(self.selector, hidden_size=adapter.hidden_size)

    @property
    def selector_module(self) -> nn.Module | None:
        """The loaded selector module (None before `prepare` when `selector` is a path)."""
        return self._module

    def selector_for(self, embeds: torch.Tensor) -> nn.Module:
        """The selector to run on `embeds`: the module itself, or a cached copy in their dtype/device.

        A selector that trains (training mode, or under autocast) is always used as it is."""
        if self._module is None:
            if self.selector is None:
                raise ValueError(
                    f"{self.name} drops audio with its trained selector: pass selector=... (see load_selector), "
                    "or set audio_drop=0 to prune video only."
                )
            self.prepare_from_path(embeds.shape[-1])
        module = self._module
        hidden = getattr(module, "hidden_size", None)
        if hidden is not None and hidden != embeds.shape[-1]:
            raise ValueError(
                f"the selector expects hidden size {hidden} but the embeddings have {embeds.shape[-1]}: use a "
                "selector built or trained for this model."
            )
        param = next(module.parameters(), None)
        if param is None or module.training or (param.dtype, param.device) == (embeds.dtype, embeds.device):
            return module
        key = (embeds.dtype, embeds.device)
        if self._converted is None or self._converted[0] != key:
            self._converted = (key, copy.deepcopy(module).to(device=embeds.device, dtype=embeds.dtype))
        return self._converted[1]

    def prepare_from_path(self, hidden_size: int) -> None:
        from ..selector import source_selector

        self._module = source_selector(self.selector, hidden_size=hidden_size)

    def video_redundancy(
        self, layout: Layout, flat_embeds: torch.Tensor, budget: Budget
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[G, P] drop priority of each video token, with the grids' present mask and flat index."""
        raise NotImplementedError

    def select(self, layout: Layout, inputs_embeds: torch.Tensor, budget: Budget) -> Selection:
        if layout.num_grids == 0:
            return keep_all(layout, inputs_embeds)
        flat = inputs_embeds.reshape(-1, inputs_embeds.shape[-1])
        scores, present, index = self.video_redundancy(layout, flat, budget)
        video_kept = drop_highest(scores, present, video_keep_per_grid(layout, budget.video_drop))
        audio_flat = audio_kept = None
        embeds = inputs_embeds
        if has_grouped_audio(layout) and drops_audio(budget):
            selector = self.selector_for(inputs_embeds)
            audio_flat, audio_kept, audio_scores = vgas_keep(
                layout, flat, video_kept, index, budget, selector, anchors_from_audio=self.anchors_from_audio
            )
            if torch.is_grad_enabled() and selector.training:
                embeds = straight_through(inputs_embeds, audio_flat, audio_kept, audio_scores)
        keep = keep_from_parts(layout, video_kept, index, audio_flat, audio_kept)
        return Selection(keep=keep, inputs_embeds=embeds)


@dataclass
class VideoOnlyMethod(SelectionMethod):
    """A method with a video rule only: `video_keep` decides the video, audio is sampled uniformly."""

    modalities = "video"

    seed: int = 0
    """Seed of the uniform audio sampling."""

    @abstractmethod
    def video_keep(
        self, layout: Layout, grids: torch.Tensor, present: torch.Tensor, budget: Budget
    ) -> torch.Tensor:
        """[G, P] True for the video tokens kept, from the [G, P, D] grids and their [G, P] present mask."""

    def select(self, layout: Layout, inputs_embeds: torch.Tensor, budget: Budget) -> Selection:
        if layout.num_grids == 0:
            return keep_all(layout, inputs_embeds)
        flat = inputs_embeds.reshape(-1, inputs_embeds.shape[-1])
        grids, present, index = gather_grids(layout, flat)
        video_kept = self.video_keep(layout, grids, present, budget)
        del grids
        audio_flat, audio_kept = uniform_audio_keep(layout, budget, self.seed)
        keep = keep_from_parts(layout, video_kept, index, audio_flat, audio_kept)
        return Selection(keep=keep, inputs_embeds=inputs_embeds)
