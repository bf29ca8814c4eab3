"""OmniZip (arXiv 2511.14582): audio-guided, training-free audio-video token compression.

Steps (docs/design.md#baselines), per sample, on the audio tokens that belong to a 2-s group (interleaved with video):

1. Audio saliency: at the audio encoder's last layer, softmax(QK^T / sqrt(d)) per head over all frames of
   the audio input, mean over heads, summed over queries (the attention each frame receives), then
   adjacent frame pairs averaged like the encoder's 2x pooling: one score per audio token. `prepare(adapter)`
   hooks the stock encoder's last attention (where the model's adapter says it is; no fork), and `select`
   lays the recorded scores on the audio tokens; `audio_saliency` ([B, N]) may also be given directly.
2. Keep the most salient audio tokens of the whole sample.
3. Anchors: C = round(c * Na) of the remaining tokens, at a regular stride in sequence order.
4. Every other remaining token goes to its most cosine-similar anchor; an anchor absorbs its top g
   assigned tokens ranked by their best cosine similarity to a video token, with w = softmax(those
   similarities): anchor' = (anchor + sum w_i a_i) / (1 + sum w). The rest are dropped.
5. Per group, S_a = fraction of its audio kept; group video drop = clip(0.75 - 0.4 S_a, 0.35, 0.75),
   rescaled to the budget.
6. Per grid: first grids of a group by DPC-kNN (cosine distance, k = 5; density exp(-mean kNN distance),
   delta = distance to the nearest denser token; keep the top density * delta), second grids by lowest
   cosine similarity to the same patch of the previous grid. Dropped video is not merged.

Choices the paper leaves open, or that the budget rule of this project overrides:

- Budget: rho_audio / rho_video are replaced by the budget. The sample keeps exactly OmniSIFT's audio
  count (sum over groups of `audio_keep_per_group`): top = that count - C salient tokens plus C merged
  anchors (C clamped to the count). Audio outside every group is untouched, as in OmniSIFT. The video
  drops are rescaled multiplicatively (one factor per sample, found by bisection, integer counts by
  largest remainder, at least one token per grid) so the sample keeps exactly OmniSIFT's video count.
- Saliency is over all frames of one audio input (the encoder itself attends inside 2-s windows).
  Without `audio_saliency` (e.g. `keep_mask` on synthetic inputs) a proxy is used and logged once: the
  mean cosine dissimilarity of an audio token to its previous and next audio tokens of the same video.
- Anchor stride: the remaining tokens of rank floor(j * R / C), j = 0 .. C-1 (R remaining); C = 0 (few
  audio tokens) means no merging. "A video token" in step 4 is any video token of the token's own group
  (the paper does not say; the whole sample would cost O(audio x video) per sample).
- Groups without audio use the sample's overall audio retention as S_a; with no audio dropped at all,
  S_a = 1 everywhere and the video drop is uniform.
- DPC-kNN: the self-distance is excluded from the k nearest neighbours (k = min(5, n - 1)); the densest
  token's delta is its largest distance in the grid; equal densities count the earlier token as denser
  (so of exact duplicates only the first is a peak); kept tokens are the top density * delta. A second grid of another size than its first grid is scored by DPC-kNN too.
- The merge writes merged anchors into a new tensor returned as `Selection.inputs_embeds` (computed in
  float32 or better, cast back); the input is never modified. Merged anchors keep their own position ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ..budget import Budget, audio_keep_per_group, group_audio_sizes, video_keep_per_grid
from ..layout import Layout
from ..ops import EPS, cosine_rows, group_slots, top_per_group
from .base import RUNTIME, Selection, SelectionMethod, register
from .shared import (
    drop_highest,
    fit_counts,
    gather_grids,
    grid_presence,
    grid_video_index,
    keep_all,
    keep_from_parts,
    previous_grid_cosine,
)

if TYPE_CHECKING:
    from ..models.base import AudioAttention, ModelAdapter

__all__ = [
    "OmniZip",
    "AudioSaliencyRecorder",
    "received_attention",
    "saliency_to_sequence",
    "neighbour_dissimilarity",
    "dpc_knn_scores",
]

logger = logging.getLogger(__name__)
_proxy_logged = False

_ATTENTION_BLOCK = 1 << 24
"""Elements of one block of attention probabilities (heads x queries x keys) when computing saliency."""


# ---------------------------------------------------------------------------------------------------
# Audio saliency from the stock encoder (step 1)
# ---------------------------------------------------------------------------------------------------


def received_attention(queries: torch.Tensor, keys: torch.Tensor, scaling: float) -> torch.Tensor:
    """[L] attention each frame receives: softmax(q k^T * scaling) per head, mean over heads, sum over queries.

    Args:
        queries, keys: [L, H, d] projected states of one audio input.
    """
    length, heads, _ = queries.shape
    q = queries.transpose(0, 1).float()
    k = keys.transpose(0, 1).float()
    received = torch.zeros(length, dtype=torch.float32, device=q.device)
    block = max(1, _ATTENTION_BLOCK // max(1, heads * length))
    for start in range(0, length, block):
        logits = torch.matmul(q[:, start : start + block], k.transpose(1, 2)) * scaling
        received += logits.softmax(-1).mean(0).sum(0)
    return received


class AudioSaliencyRecorder:
    """Records OmniZip's per-audio-token saliency at every forward of a stock audio encoder.

    Use as a context manager or call `remove()`. After a forward that ran the audio encoder, `scores`
    holds one [tokens] float32 tensor per audio input, in the order the encoder received them (the
    order of their tokens in the sequence). Where the attention is and how frames map to tokens comes
    from the model's adapter (`ModelAdapter.audio_attention`).
    """

    def __init__(self, where: AudioAttention) -> None:
        self.where = where
        self.scores: list[torch.Tensor] | None = None
        self._feature_lens: torch.Tensor | None = None
        self._handles = [
            where.encoder.register_forward_pre_hook(self._on_encoder, with_kwargs=True),
            where.attention.register_forward_pre_hook(self._on_attention, with_kwargs=True),
        ]

    def _on_encoder(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        lens = kwargs.get("feature_lens")
        if lens is None and len(args) > 1:
            lens = args[1]
        self._feature_lens = lens

    @torch.no_grad()
    def _on_attention(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        if hidden is None:
            return
        hidden = hidden.reshape(-1, hidden.shape[-1])
        heads = module.num_heads
        queries = module.q_proj(hidden).reshape(hidden.shape[0], heads, -1)
        keys = module.k_proj(hidden).reshape(hidden.shape[0], heads, -1)
        if self._feature_lens is not None:
            frames = self.where.frames_per_input(self._feature_lens)
        else:
            frames = [hidden.shape[0]]
        if sum(frames) != hidden.shape[0]:
            raise RuntimeError(
                f"audio saliency hook: the encoder's last layer got {hidden.shape[0]} frames but the audio "
                f"lengths give {sum(frames)}; this transformers version lays audio out differently."
            )
        self.scores = [
            self.where.pool(received_attention(q, k, float(module.scaling)))
            for q, k in zip(queries.split(frames), keys.split(frames), strict=True)
        ]

    def to_sequence(self, is_audio: torch.Tensor) -> torch.Tensor:
        """The recorded scores laid on the audio positions `is_audio` ([B, N] bool; NaN elsewhere)."""
        if self.scores is None:
            raise RuntimeError(
                "no audio saliency recorded: the audio encoder has not run since the hook was set."
            )
        return saliency_to_sequence(self.scores, is_audio)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> AudioSaliencyRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def saliency_to_sequence(per_audio_scores: list[torch.Tensor], is_audio: torch.Tensor) -> torch.Tensor:
    """[B, N] float32: each audio input's scores on its audio token positions, in order; NaN elsewhere.

    The audio inputs fill the audio positions in row-major order, the way the model's `masked_scatter`
    places the encoder's features.
    """
    out = torch.full(is_audio.shape, float("nan"), dtype=torch.float32, device=is_audio.device)
    positions = is_audio
    scores = (
        torch.cat([s.reshape(-1).float() for s in per_audio_scores]).to(is_audio.device)
        if per_audio_scores
        else out.new_zeros(0)
    )
    expected = int(positions.sum())
    if scores.numel() != expected:
        raise ValueError(
            f"{scores.numel()} audio saliency scores for {expected} audio tokens: the scores must "
            "come from the same forward (one tensor per audio input, in order)."
        )
    out[positions] = scores
    return out


# ---------------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------------


def neighbour_dissimilarity(
    audio: torch.Tensor, same_prev: torch.Tensor, same_next: torch.Tensor
) -> torch.Tensor:
    """[A] mean `1 - cos` of each audio token to its previous / next token (where `same_*` says they exist)."""
    norms = torch.linalg.vector_norm(audio, dim=-1)
    dis = torch.zeros(audio.shape[0], 2, dtype=torch.float64, device=audio.device)
    if audio.shape[0] > 1:
        cos = cosine_rows(torch.linalg.vecdot(audio[1:], audio[:-1]), norms[1:], norms[:-1]).double()
        dis[1:, 0] = torch.where(same_prev[1:], 1 - cos, 0.0)
        dis[:-1, 1] = torch.where(same_next[:-1], 1 - cos, 0.0)
    count = same_prev.double() + same_next.double()
    return dis.sum(1) / count.clamp_min(1)


def dpc_knn_scores(grids: torch.Tensor, present: torch.Tensor, k: int) -> torch.Tensor:
    """[G, P] DPC-kNN density * delta of each token in its grid (cosine distance); -inf on padding."""
    norms = torch.linalg.vector_norm(grids, dim=-1).clamp_min(EPS)
    gram = torch.bmm(grids, grids.transpose(1, 2)).float()
    dist = (1.0 - gram / (norms.unsqueeze(2) * norms.unsqueeze(1)).float()).clamp_min(0.0)
    del gram
    size = grids.shape[1]
    eye = torch.eye(size, dtype=torch.bool, device=grids.device).unsqueeze(0)
    pair_ok = present.unsqueeze(2) & present.unsqueeze(1)
    others = dist.masked_fill(~pair_ok | eye, float("inf"))
    k_eff = min(k, max(size - 1, 1))
    nearest = torch.topk(others, k_eff, dim=-1, largest=False).values
    finite = torch.isfinite(nearest)
    mean_knn = torch.where(finite, nearest, 0.0).sum(-1) / finite.sum(-1).clamp_min(1)
    density = torch.exp(-mean_knn).masked_fill(~present, float("-inf"))
    # [g, i, j]: j is denser than i; equal densities go to the earlier token, so of duplicates only the
    # first is a peak (the others are at distance 0 from a denser token).
    d_i, d_j = density.unsqueeze(2), density.unsqueeze(1)
    earlier = torch.ones(size, size, dtype=torch.bool, device=grids.device).tril(-1).unsqueeze(0)
    denser = (d_j > d_i) | ((d_j == d_i) & earlier)
    to_denser = others.masked_fill(~denser, float("inf")).amin(-1)
    farthest = dist.masked_fill(~pair_ok, float("-inf")).amax(-1)
    delta = torch.where(torch.isfinite(to_denser), to_denser, farthest.clamp_min(0))
    score = density * delta
    return score.masked_fill(~present, float("-inf"))


@dataclass
class _AudioResult:
    flat: torch.Tensor
    kept: torch.Tensor
    group_retention: torch.Tensor
    embeds: torch.Tensor


@register
@dataclass
class OmniZip(SelectionMethod):
    """Audio saliency keeps and merges audio; per-group video budgets follow audio retention."""

    name = "omnizip"
    paper = "OmniZip, arXiv 2511.14582"
    modalities = "audio+video"
    uses = "audio encoder attention"
    summary: ClassVar[str] = (
        "audio saliency keep + anchor merging; audio retention sets each group's video drop (DPC-kNN, temporal)"
    )

    merge_size: int = 3
    """g: tokens each audio anchor absorbs at most."""
    anchor_ratio: float = 0.05
    """c: audio anchors as a fraction of the sample's grouped audio tokens."""
    knn: int = 5
    """k of DPC-kNN."""
    drop_base: float = 0.75
    drop_slope: float = 0.4
    drop_min: float = 0.35
    drop_max: float = 0.75
    audio_saliency: torch.Tensor | None = field(default=None, repr=False, compare=False, metadata=RUNTIME)
    """[B, N] saliency per audio position, for calls outside an attached model; else recorded in `prepare`."""

    def __post_init__(self) -> None:
        self._recorder: AudioSaliencyRecorder | None = None
        if isinstance(self.merge_size, bool) or not isinstance(self.merge_size, int) or self.merge_size < 0:
            raise ValueError(f"merge_size (g) must be an int >= 0, got {self.merge_size!r}.")
        if not isinstance(self.anchor_ratio, (int, float)) or not 0.0 <= self.anchor_ratio < 1.0:
            raise ValueError(f"anchor_ratio (c) must be in [0, 1), got {self.anchor_ratio!r}.")
        if isinstance(self.knn, bool) or not isinstance(self.knn, int) or self.knn < 1:
            raise ValueError(f"knn must be an int >= 1, got {self.knn!r}.")
        if not 0.0 < self.drop_min <= self.drop_max <= 1.0:
            raise ValueError(
                f"need 0 < drop_min <= drop_max <= 1 for the group video drops, got drop_min={self.drop_min!r}, "
                f"drop_max={self.drop_max!r}."
            )

    def prepare(self, adapter: ModelAdapter) -> None:
        self.release()
        self._recorder = AudioSaliencyRecorder(adapter.audio_attention())

    def release(self) -> None:
        if self._recorder is not None:
            self._recorder.remove()
            self._recorder = None

    def _given_saliency(self, layout: Layout) -> torch.Tensor | None:
        """The saliency of this batch: given directly, or recorded by the encoder hook (then consumed)."""
        if self.audio_saliency is not None:
            return self.audio_saliency
        if self._recorder is None or self._recorder.scores is None:
            return None
        saliency = self._recorder.to_sequence(layout.is_audio)
        self._recorder.scores = None
        return saliency

    # -- audio ---------------------------------------------------------------------------------------

    def _saliency(
        self,
        layout: Layout,
        flat: torch.Tensor,
        audio_flat: torch.Tensor,
        audio_saliency: torch.Tensor | None,
    ) -> torch.Tensor:
        if audio_saliency is not None:
            if audio_saliency.shape != layout.valid.shape:
                raise ValueError(
                    f"audio_saliency must be [batch, seq_len] = {tuple(layout.valid.shape)} (one score per "
                    f"position), got {tuple(audio_saliency.shape)}."
                )
            scores = audio_saliency.reshape(-1).to(layout.device)[audio_flat].double()
            if not bool(torch.isfinite(scores).all()):
                raise ValueError(
                    "audio_saliency is NaN or infinite on some audio tokens: it must hold a score for every audio "
                    "token of the batch (see saliency_to_sequence)."
                )
            return scores
        global _proxy_logged
        if not _proxy_logged:
            logger.warning(
                "omnizip: no audio_saliency given (audio encoder attention); using the proxy 'mean cosine "
                "dissimilarity to neighbouring audio tokens' instead."
            )
            _proxy_logged = True
        grouped_video = grid_video_index(layout)[0][layout.group_first_grid]
        video = grouped_video[layout.audio_group[layout.audio_group >= 0]]
        sample = audio_flat // layout.seq_len
        same = torch.zeros_like(video, dtype=torch.bool)
        same[1:] = (video[1:] == video[:-1]) & (sample[1:] == sample[:-1])
        same_next = torch.zeros_like(same)
        same_next[:-1] = same[1:]
        return neighbour_dissimilarity(flat[audio_flat], same, same_next)

    def _audio(
        self,
        layout: Layout,
        inputs_embeds: torch.Tensor,
        flat: torch.Tensor,
        grids: torch.Tensor,
        budget: Budget,
        audio_saliency: torch.Tensor | None,
    ) -> _AudioResult | None:
        grouped = layout.audio_group >= 0
        if not bool(grouped.any()) or not bool((budget.audio_drop > 0).any()):
            return None
        device, batch = layout.device, layout.batch_size
        audio_flat = layout.audio_flat[grouped]
        audio_group = layout.audio_group[grouped]
        sample = audio_flat // layout.seq_len
        sizes = group_audio_sizes(layout)
        group_keep = audio_keep_per_group(layout, budget.audio_drop, sizes)
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        keep_total = zeros.index_add(0, layout.group_batch, group_keep)
        present_total = torch.bincount(sample, minlength=batch)
        anchors = torch.round(present_total.double() * float(self.anchor_ratio)).long()
        anchors = torch.where(keep_total < present_total, torch.minimum(anchors, keep_total), 0)
        saliency = self._saliency(layout, flat, audio_flat, audio_saliency)
        top = top_per_group(saliency, sample, keep_total - anchors, batch)

        # Anchors: remaining tokens of rank floor(j * R / C), j < C, in sequence order (step 3).
        remaining = ~top
        rem_rank = torch.cumsum(remaining.long(), 0) - 1
        rem_total = zeros.index_add(0, sample, remaining.long())
        rem_rank = rem_rank - (torch.cumsum(rem_total, 0) - rem_total)[sample]
        r_all, c_all = rem_total[sample], anchors[sample]
        j0 = torch.div(rem_rank * c_all + r_all - 1, r_all.clamp_min(1), rounding_mode="floor")
        is_anchor = remaining & (c_all > 0) & (j0 < c_all) & (j0 * r_all < (rem_rank + 1) * c_all)
        others = remaining & ~is_anchor
        embeds = inputs_embeds
        if bool(is_anchor.any()) and bool(others.any()) and self.merge_size > 0:
            embeds = self._merge(
                layout, inputs_embeds, flat, grids, audio_flat, audio_group, sample, is_anchor, others
            )
        kept = top | is_anchor
        group_kept = torch.zeros(layout.num_groups, dtype=torch.long, device=device).index_add(
            0, audio_group, kept.long()
        )
        retention = group_kept.double() / sizes.clamp_min(1).double()
        sample_retention = (
            zeros.index_add(0, sample, kept.long()).double() / present_total.clamp_min(1).double()
        )
        retention = torch.where(sizes > 0, retention, sample_retention[layout.group_batch])
        return _AudioResult(audio_flat, kept, retention, embeds)

    def _merge(
        self,
        layout: Layout,
        inputs_embeds: torch.Tensor,
        flat: torch.Tensor,
        grids: torch.Tensor,
        audio_flat: torch.Tensor,
        audio_group: torch.Tensor,
        sample: torch.Tensor,
        is_anchor: torch.Tensor,
        others: torch.Tensor,
    ) -> torch.Tensor:
        batch, device = layout.batch_size, layout.device
        work_dtype = torch.float64 if flat.dtype == torch.float64 else torch.float32
        audio = flat[audio_flat].to(work_dtype)
        unit = audio / torch.linalg.vector_norm(audio, dim=-1, keepdim=True).clamp_min(EPS)

        # Step 4a: each other token joins its most similar anchor of the same sample.
        anchor_idx = torch.nonzero(is_anchor).squeeze(1)
        other_idx = torch.nonzero(others).squeeze(1)
        a_slot, a_len = group_slots(sample[anchor_idx], batch)
        o_slot, o_len = group_slots(sample[other_idx], batch)
        hidden = unit.shape[-1]
        a_pad = unit.new_zeros(batch, int(a_len.max()), hidden)
        a_pad[sample[anchor_idx], a_slot] = unit[anchor_idx]
        o_pad = unit.new_zeros(batch, int(o_len.max()), hidden)
        o_pad[sample[other_idx], o_slot] = unit[other_idx]
        sims = torch.bmm(o_pad, a_pad.transpose(1, 2))
        valid_anchor = torch.arange(a_pad.shape[1], device=device).unsqueeze(0) < a_len.unsqueeze(1)
        sims = sims.masked_fill(~valid_anchor.unsqueeze(1), float("-inf"))
        best_slot = sims.argmax(-1)[sample[other_idx], o_slot]
        has_anchor = a_len[sample[other_idx]] > 0
        anchor_start = torch.cumsum(a_len, 0) - a_len
        target = anchor_start[sample[other_idx]] + best_slot  # index into anchor_idx

        # Step 4b: rank a token by its best cosine similarity to a video token of its own group.
        score = self._video_affinity(layout, grids, unit[other_idx], audio_group[other_idx])
        num_anchors = anchor_idx.numel()
        target = torch.where(has_anchor, target, num_anchors)  # no anchor in the sample: merged nowhere
        order = torch.argsort(score, descending=True, stable=True)
        order = order[torch.argsort(target[order], stable=True)]
        rank_sorted, _ = group_slots(target[order], num_anchors + 1)
        rank = torch.empty_like(rank_sorted).scatter_(0, order, rank_sorted)
        absorbed = (rank < self.merge_size) & has_anchor
        if not bool(absorbed.any()):
            return inputs_embeds
        tgt, s = target[absorbed], score[absorbed]
        top = torch.full((num_anchors,), float("-inf"), dtype=s.dtype, device=device)
        top = top.scatter_reduce(0, tgt, s, reduce="amax")
        w = torch.exp(s - top[tgt])
        w = w / torch.zeros(num_anchors, dtype=w.dtype, device=device).index_add(0, tgt, w)[tgt]
        anchor_rows = flat[audio_flat[anchor_idx]].to(work_dtype)
        members = flat[audio_flat[other_idx[absorbed]]].to(work_dtype)
        summed = torch.zeros_like(anchor_rows).index_add(0, tgt, members * w.unsqueeze(1).to(work_dtype))
        weight = torch.zeros(num_anchors, dtype=work_dtype, device=device).index_add(0, tgt, w.to(work_dtype))
        merged = (anchor_rows + summed) / (1.0 + weight).unsqueeze(1)
        out = inputs_embeds.reshape(-1, inputs_embeds.shape[-1]).index_put(
            (audio_flat[anchor_idx],), merged.to(inputs_embeds.dtype)
        )
        return out.view_as(inputs_embeds)

    @staticmethod
    def _video_affinity(
        layout: Layout, grids: torch.Tensor, unit_audio: torch.Tensor, group: torch.Tensor
    ) -> torch.Tensor:
        """[A'] best cosine similarity of each (unit-norm) audio token to a video token of its group."""
        num_groups = layout.num_groups
        order = torch.argsort(group, stable=True)
        slot_sorted, lengths = group_slots(group[order], num_groups)
        slot = torch.empty_like(slot_sorted).scatter_(0, order, slot_sorted)
        width = int(lengths.max())
        padded = grids.new_zeros(num_groups, width, grids.shape[-1])
        padded[group, slot] = unit_audio.to(grids.dtype)
        dots = torch.bmm(padded[layout.grid_group], grids.transpose(1, 2))  # [G, width, P]
        norms = torch.linalg.vector_norm(grids, dim=-1).clamp_min(EPS)
        present = grid_presence(layout)
        cos = (dots / norms.unsqueeze(1)).masked_fill(~present.unsqueeze(1), float("-inf")).amax(-1)
        best = torch.full((num_groups, width), float("-inf"), dtype=cos.dtype, device=cos.device)
        best = best.scatter_reduce(0, layout.grid_group.unsqueeze(1).expand_as(cos), cos, reduce="amax")
        return best[group, slot].double()

    # -- video ---------------------------------------------------------------------------------------

    def _video_counts(self, layout: Layout, budget: Budget, retention: torch.Tensor) -> torch.Tensor:
        drop = (self.drop_base - self.drop_slope * retention).clamp(self.drop_min, self.drop_max)
        grid_drop = drop[layout.grid_group].double()
        sizes = layout.grid_size
        target = torch.zeros(layout.batch_size, dtype=torch.long, device=layout.device).index_add(
            0, layout.grid_batch, video_keep_per_grid(layout, budget.video_drop)
        )
        high = 1.0 / float(grid_drop.min().clamp_min(1e-6)) + 1.0
        return fit_counts(
            lambda x: sizes.double() * (1.0 - x[layout.grid_batch] * grid_drop),
            layout.grid_batch,
            target,
            0.0,
            high,
            False,
            torch.ones_like(sizes),
            sizes,
        )

    def _video_scores(self, layout: Layout, grids: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """[G, P] drop priority (higher = dropped first)."""
        norms = torch.linalg.vector_norm(grids, dim=-1)
        temporal = previous_grid_cosine(grids, norms).float()
        use_dpc = layout.grid_is_first | ~layout.same_size_as_previous()
        scores = temporal
        dpc_grids = torch.nonzero(use_dpc).squeeze(1)
        if dpc_grids.numel():
            count = dpc_grids.numel()
            every_other = torch.arange(0, 2 * count, 2, device=dpc_grids.device)
            # The usual case (even grids): a strided view instead of copying half the video.
            if 2 * count - 1 <= layout.num_grids and torch.equal(dpc_grids, every_other):
                chosen = grids[0 : 2 * count - 1 : 2]
            else:
                chosen = grids[dpc_grids]
            dpc = dpc_knn_scores(chosen, present[dpc_grids], self.knn)
            scores = scores.index_put((dpc_grids,), -dpc.float())
        return scores

    def select(self, layout: Layout, inputs_embeds: torch.Tensor, budget: Budget) -> Selection:
        saliency = self._given_saliency(layout)
        if layout.num_grids == 0:
            return keep_all(layout, inputs_embeds)
        flat = inputs_embeds.reshape(-1, inputs_embeds.shape[-1])
        grids, present, index = gather_grids(layout, flat)
        audio = self._audio(layout, inputs_embeds, flat, grids, budget, saliency)
        if audio is None:
            retention = torch.ones(layout.num_groups, dtype=torch.float64, device=layout.device)
            audio_flat = audio_kept = None
            embeds = inputs_embeds
        else:
            retention, audio_flat, audio_kept, embeds = (
                audio.group_retention,
                audio.flat,
                audio.kept,
                audio.embeds,
            )
        counts = self._video_counts(layout, budget, retention)
        scores = self._video_scores(layout, grids, present)
        del grids
        video_kept = drop_highest(scores, present, counts)
        keep = keep_from_parts(layout, video_kept, index, audio_flat, audio_kept)
        return Selection(keep=keep, inputs_embeds=embeds)
