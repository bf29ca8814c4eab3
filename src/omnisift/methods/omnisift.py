"""OmniSIFT (arXiv 2602.04804): spatio-temporal video pruning, then vision-guided audio selection.

STVP, per group of two grids (docs/design.md#selection-rules): the first grid drops its `floor(n * video_drop)` tokens
most cosine-similar to the grid's mean; the second grid (when as large as the first) drops the same
number of tokens most similar to the token at the same index of the unpruned first grid. A second
grid of another size is kept whole (the temporal rule needs index-aligned patches).

VGAS (docs/design.md#selection-rules): the group's surviving video tokens are the anchors; the selector scores the group's
audio against them and the top `La - floor(La * audio_drop)` are kept. During training the kept audio
is multiplied by a straight-through factor of value exactly 1 so the selector gets a gradient.

All grids and groups of the whole batch are handled in a few batched calls. The ablations
(`methods/ablations.py`) subclass `OmniSIFT` and change one stage.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ..budget import Budget, audio_keep_per_group, group_audio_sizes, video_keep_per_grid
from ..layout import Layout
from ..ops import cosine_rows, gather_rows, top_per_group
from .base import Selection, SelectionMethod, register
from .shared import drop_highest, keep_all, keep_from_parts

if TYPE_CHECKING:
    from ..models.base import ModelAdapter

__all__ = ["OmniSIFT", "SelectorSource", "straight_through", "stvp_scores", "vgas_keep"]


def has_grouped_audio(layout: Layout) -> bool:
    return layout.audio_group.numel() > 0 and bool((layout.audio_group >= 0).any())


def drops_audio(budget: Budget) -> bool:
    return bool((budget.audio_drop > 0).any())


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
    [Q, P, D] product either.

    The views assume [N, D] rows packed one after another, so a non-contiguous input (a slice of wider
    embeddings, a transposed buffer) is packed first; a contiguous view may start inside its storage.
    """
    d = flat_embeds.shape[-1]
    flat_embeds = flat_embeds.detach().contiguous()
    origin = flat_embeds.storage_offset()  # as_strided offsets count from the storage, not the view
    first = flat_embeds.as_strided((groups, size, d), (stride * d, d, 1), origin + start * d)
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
            pairs = flat_embeds.as_strided((rows, 2, d), (d, size * d, 1), origin + start * d)
            gram = torch.bmm(pairs, pairs.transpose(1, 2))
            at = torch.arange(seconds, device=flat_embeds.device).unsqueeze(1) * stride
            gram = gram[(at + torch.arange(size, device=flat_embeds.device)).reshape(-1)]
            dots = gram[:, 0, 1].view(seconds, size)
            norms2 = gram[:, 1, 1].clamp_min(0).sqrt().view(seconds, size)
        else:
            second = flat_embeds.as_strided(
                (seconds, size, d), (stride * d, d, 1), origin + (start + size) * d
            )
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


SelectorSource = nn.Module | str | Path | None


@register
@dataclass
class OmniSIFT(SelectionMethod):
    """STVP video pruning, then the learned vision-guided audio selector (VGAS). The ablations subclass
    it and change one stage (`video_redundancy`, or `anchors_from_audio`).

    `selector` is the trained audio selector: a module, a selector `.safetensors` file or a checkpoint
    folder with `thinker.compressor.*` keys (loaded in `prepare`, sized from the model). The caller's
    module is never modified: when the embeddings come in another dtype or device (e.g. after
    `model.to(torch.bfloat16)`), inference runs on a converted copy, made once per dtype/device; a selector
    in training mode (a fresh module is one until `.eval()`) is used as it is and reads the embeddings in its
    own dtype/device, so gradients still reach it.
    """

    name = "omnisift"
    paper = "OmniSIFT, arXiv 2602.04804"
    summary = (
        "STVP drops video redundant within and across frames; a trained selector keeps audio tied to them"
    )
    modalities = "audio+video"
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

        A selector that trains (training mode) is always used as it is; it casts its inputs itself."""
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
        """[G, P] drop priority of each video token (STVP), with the grids' present mask and flat index."""
        return stvp_scores(layout, flat_embeds)

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
