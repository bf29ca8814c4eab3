"""One behaviour per method on synthetic inputs whose right answer is known by construction."""

from __future__ import annotations

import pytest
import torch
from methods_helpers import HIDDEN, counts, run

from omnisift import build_layout, select_tokens
from omnisift.methods.ablations import stride_priority
from omnisift.methods.omnizip import dpc_knn_scores
from omnisift.models.qwen2_5_omni.synthetic import av_clip, build_batch, text, video


def _video_batch(seconds: int, grid_h: int = 4, grid_w: int = 4, with_audio: bool = False):
    clip = av_clip(seconds, grid_h, grid_w) if with_audio else video(seconds, grid_h, grid_w)
    batch = build_batch([[text(3), clip, text(2)]], hidden_size=HIDDEN)
    layout = build_layout(batch.input_ids, batch.position_ids[0], batch.attention_mask, batch.token_ids)
    index, present = layout.grid_index_matrix()
    return batch, layout, index


def _set_grids(batch, index: torch.Tensor, grids: torch.Tensor) -> None:
    """Write [G, P, D] grid embeddings at their sequence positions."""
    flat = batch.inputs_embeds.view(-1, HIDDEN)
    flat[index.reshape(-1)] = grids.reshape(-1, HIDDEN)


def _kept_grid(result, index: torch.Tensor) -> torch.Tensor:
    """[G, P] keep mask of the video slots."""
    return result.keep.reshape(-1)[index]


def test_evs_keeps_first_grid_and_what_moves_in_a_static_video():
    batch, _, index = _video_batch(4)  # 4 grids of 16 tokens
    g, p = index.shape
    gen = torch.Generator().manual_seed(0)
    grids = torch.randn(1, p, HIDDEN, generator=gen).repeat(g, 1, 1)
    moved = [(1, 0), (2, 3), (3, 5), (3, 6)]  # a patch changes at this grid and stays changed
    for grid, slot in moved:
        grids[grid:, slot] = torch.randn(HIDDEN, generator=gen)
    _set_grids(batch, index, grids)
    # 0.7 drops floor(16 * 0.7) = 11 of 16 per grid: 4 * 5 = 20 kept = the first grid + the 4 moved tokens.
    kept = _kept_grid(run(batch, "evs", video_drop=0.7, audio_drop=0.0), index)
    expected = torch.zeros(g, p, dtype=torch.bool)
    expected[0] = True
    for grid, slot in moved:
        expected[grid, slot] = True
    assert torch.equal(kept, expected)


def test_dycoke_merges_duplicated_patches():
    batch, _, index = _video_batch(4)  # one window of 4 grids, 16 tokens each
    g, p = index.shape
    gen = torch.Generator().manual_seed(1)
    grids = torch.randn(g, p, HIDDEN, generator=gen)
    duplicated = {
        1: [0, 2, 4, 6, 8, 10, 12, 14],
        2: [1, 2, 3, 4, 5, 6, 7, 8],
        3: [8, 9, 10, 11, 12, 13, 14, 15],
    }
    reference = {1: 0, 2: 0, 3: 2}  # pairs (0, 1), (2, 3), then grid 2 against grid 0
    for grid, slots in duplicated.items():
        grids[grid, slots] = grids[reference[grid], slots]
    _set_grids(batch, index, grids)
    # floor(16 * 0.4) = 6 per grid, 24 in all, spread over the 3 pruned grids: 8 each = the duplicates.
    kept = _kept_grid(run(batch, "dycoke", video_drop=0.4, audio_drop=0.0), index)
    assert bool(kept[0].all())
    for grid, slots in duplicated.items():
        expected = torch.ones(p, dtype=torch.bool)
        expected[slots] = False
        assert torch.equal(kept[grid], expected), f"grid {grid}"


def test_dycoke_unreachable_budget_is_a_clear_error():
    batch, _, _ = _video_batch(4)
    with pytest.raises(ValueError, match=r"DyCoke cannot reach .* at most 75.0% .* asks to drop 81.2%"):
        run(batch, "dycoke", video_drop=0.85, audio_drop=0.0)


def test_vidcom2_gives_a_unique_frame_a_larger_budget():
    batch, _, index = _video_batch(4, 6, 6)  # 4 grids of 36 tokens
    g, p = index.shape
    gen = torch.Generator().manual_seed(2)
    scene = torch.randn(p, HIDDEN, generator=gen)
    grids = scene.repeat(g, 1, 1) + 0.05 * torch.randn(g, p, HIDDEN, generator=gen)
    grids[2] = torch.randn(p, HIDDEN, generator=gen)  # a cut: one frame unlike the others
    _set_grids(batch, index, grids)
    result = run(batch, "vidcom2", video_drop=0.7, audio_drop=0.0)
    per_grid = _kept_grid(result, index).sum(1)
    assert int(per_grid.sum()) == 4 * (36 - int(36 * 0.7))
    assert int(per_grid[2]) > int(per_grid[[0, 1, 3]].max())


def _omnizip_case(salient_group: int):
    batch, layout, index = _video_batch(4, with_audio=True)  # 2 groups of 2 grids, 50 audio tokens each
    saliency = torch.full(batch.input_ids.shape, float("nan"))
    grouped = layout.audio_flat[layout.audio_group >= 0]
    group = layout.audio_group[layout.audio_group >= 0]
    gen = torch.Generator().manual_seed(3)
    values = torch.where(group == salient_group, 1.0, 0.0) + 0.01 * torch.rand(group.numel(), generator=gen)
    saliency.view(-1)[grouped] = values
    return batch, layout, index, saliency


def test_omnizip_keeps_more_video_where_audio_is_salient():
    for salient in (0, 1):
        batch, layout, index, saliency = _omnizip_case(salient)
        with torch.no_grad():
            result = select_tokens(
                **batch.as_kwargs(), method="omnizip", video_drop=0.6, audio_drop=0.5, audio_saliency=saliency
            )
        per_group = torch.zeros(2, dtype=torch.long).index_add(
            0, layout.grid_group, _kept_grid(result, index).sum(1)
        )
        assert int(per_group[salient]) > int(per_group[1 - salient]), (salient, per_group)
        # Audio: the salient group keeps (almost) all of its tokens.
        audio_kept = result.keep.view(-1)[layout.audio_flat]
        kept_per_group = torch.zeros(2, dtype=torch.long).index_add(0, layout.audio_group, audio_kept.long())
        assert int(kept_per_group[salient]) >= 45 and int(kept_per_group.sum()) == 50


def test_omnizip_merges_only_into_kept_audio_anchors():
    batch, layout, index, saliency = _omnizip_case(0)
    before = batch.inputs_embeds.clone()
    result = select_tokens(
        **batch.as_kwargs(), method="omnizip", video_drop=0.6, audio_drop=0.5, audio_saliency=saliency
    )
    assert torch.equal(batch.inputs_embeds, before)
    changed = (result.inputs_embeds != before).any(-1)
    is_audio = torch.zeros_like(changed)
    is_audio.view(-1)[layout.audio_flat] = True
    assert bool(changed.any())
    assert bool((result.keep & is_audio)[changed].all())  # only kept audio rows change
    # round(0.05 * 100) = 5 anchors, each absorbing at most 3 tokens with softmax weights summing to 1:
    # anchor' = (anchor + mix) / 2, where mix is a convex combination of dropped audio tokens.
    assert 0 < int(changed.sum()) <= 5


def test_dpc_knn_keeps_cluster_peak_and_outliers():
    gen = torch.Generator().manual_seed(4)
    base = torch.randn(HIDDEN, generator=gen)
    tokens = base.repeat(16, 1)
    outliers = [3, 7, 11, 15]
    tokens[outliers] = 3 * torch.randn(4, HIDDEN, generator=gen)
    scores = dpc_knn_scores(tokens.unsqueeze(0), torch.ones(1, 16, dtype=torch.bool), k=5)[0]
    assert sorted(scores.topk(5).indices.tolist()) == [0, *outliers]


def test_random_same_seed_same_mask_other_seed_other_mask():
    batch = build_batch(
        [[text(3), av_clip(6, 4, 4), text(2)], [text(1), av_clip(4, 4, 4)]], hidden_size=HIDDEN
    )
    a = run(batch, "random", video_drop=0.5, audio_drop=0.5, seed=11).keep
    b = run(batch, "random", video_drop=0.5, audio_drop=0.5, seed=11).keep
    c = run(batch, "random", video_drop=0.5, audio_drop=0.5, seed=12).keep
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert counts(run(batch, "random", video_drop=0.5, audio_drop=0.5, seed=12)) == counts(
        run(batch, "random", video_drop=0.5, audio_drop=0.5, seed=11)
    )


def test_random_keep_is_uniform_over_slots():
    """Over many seeds every video slot of a grid is kept about equally often."""
    batch, _, index = _video_batch(2)
    total = torch.zeros(index.shape)
    for seed in range(200):
        total += _kept_grid(run(batch, "random", video_drop=0.5, audio_drop=0.0, seed=seed), index).float()
    frequency = total / 200
    assert torch.allclose(frequency, torch.full_like(frequency, 0.5), atol=0.15)


def test_no_temporal_prunes_a_repeated_grid_like_the_first(selector):
    batch, _, index = _video_batch(2)  # one group: grids 0 and 1
    grids = torch.randn(1, index.shape[1], HIDDEN, generator=torch.Generator().manual_seed(5)).repeat(2, 1, 1)
    _set_grids(batch, index, grids)
    kept = _kept_grid(run(batch, "omnisift-no-temporal", selector, video_drop=0.5, audio_drop=0.0), index)
    assert torch.equal(kept[0], kept[1]) and int(kept[0].sum()) == 8
    # OmniSIFT's temporal rule sees only exact repeats in grid 1 (all ties): a different mask.
    full = _kept_grid(run(batch, "omnisift", selector, video_drop=0.5, audio_drop=0.0), index)
    assert not torch.equal(full[0], full[1])


def test_no_spatial_scores_first_grids_against_the_previous_grid(selector):
    batch, layout, index = _video_batch(4)  # groups (0, 1), (2, 3)
    g, p = index.shape
    gen = torch.Generator().manual_seed(6)
    grids = torch.randn(g, p, HIDDEN, generator=gen)
    grids[2] = grids[1]
    moved = [0, 5, 9, 12, 13]
    grids[2, moved] = torch.randn(len(moved), HIDDEN, generator=gen)
    _set_grids(batch, index, grids)
    # floor(16 * 0.7) = 11 dropped: grid 2 keeps 5 = exactly the tokens that changed since grid 1.
    kept = _kept_grid(run(batch, "omnisift-no-spatial", selector, video_drop=0.7, audio_drop=0.0), index)
    assert sorted(torch.nonzero(kept[2]).squeeze(1).tolist()) == moved
    # The video's first grid has no previous grid: a regular stride, floor((2j + 1) * 16 / 10) for 5 kept.
    assert torch.nonzero(kept[0]).squeeze(1).tolist() == [1, 4, 8, 11, 14]
    priority = stride_priority(layout, torch.full((g,), 5), torch.float32)
    assert torch.equal(priority[0] == 0, kept[0])


def test_audio_only_ablation_ignores_the_video(selector):
    batch = build_batch([[text(2), av_clip(4, 4, 4), text(2)]], hidden_size=HIDDEN)
    layout = build_layout(batch.input_ids, batch.position_ids[0], batch.attention_mask, batch.token_ids)
    other = build_batch([[text(2), av_clip(4, 4, 4), text(2)]], hidden_size=HIDDEN)
    other.inputs_embeds = batch.inputs_embeds.clone()
    other.inputs_embeds.view(-1, HIDDEN)[layout.video_flat] = torch.randn(layout.video_flat.numel(), HIDDEN)

    def audio_mask(b, method):
        return run(b, method, selector, video_drop=0.5, audio_drop=0.5).keep.view(-1)[layout.audio_flat]

    assert torch.equal(audio_mask(batch, "omnisift-audio-only"), audio_mask(other, "omnisift-audio-only"))
    assert not torch.equal(audio_mask(batch, "omnisift"), audio_mask(other, "omnisift"))


def test_omnizip_merged_anchor_is_half_anchor_half_convex_mix_of_dropped_audio():
    hidden = 128  # more dimensions than dropped audio tokens: a mix of them has unique weights
    batch = build_batch([[text(3), av_clip(4, 4, 4), text(2)]], hidden_size=hidden, seed=7)
    layout = build_layout(batch.input_ids, batch.position_ids[0], batch.attention_mask, batch.token_ids)
    with torch.no_grad():
        result = select_tokens(**batch.as_kwargs(), method="omnizip", video_drop=0.5, audio_drop=0.5)
    old = batch.inputs_embeds.view(-1, hidden).double()
    new = result.inputs_embeds.view(-1, hidden).double()
    keep = result.keep.view(-1)
    changed = torch.nonzero((new != old).any(-1)).squeeze(1)
    dropped = layout.audio_flat[~keep[layout.audio_flat]]
    assert 0 < changed.numel() <= 5 and dropped.numel() == 50
    for row in changed.tolist():
        mix = 2 * new[row] - old[row]  # anchor' = (anchor + sum w a) / (1 + sum w) with sum w = 1
        weights = torch.linalg.lstsq(old[dropped].T, mix.unsqueeze(1)).solution.squeeze(1)
        torch.testing.assert_close(old[dropped].T @ weights, mix, rtol=1e-4, atol=1e-4)
        used = weights.abs() > 1e-4
        assert 1 <= int(used.sum()) <= 3  # g = 3 absorbed tokens at most
        assert bool((weights[used] > 0).all()) and abs(float(weights.sum()) - 1) < 1e-4
