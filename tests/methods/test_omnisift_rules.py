"""Token-for-token parity of the batched OmniSIFT selection with the literal reference, and its contracts."""

from __future__ import annotations

import random

import pytest
import torch

import omnisift
from omnisift import VisionGuidedAudioSelector, keep_mask, select_tokens
from omnisift.models.qwen2_5_omni.synthetic import audio, av_clip, build_batch, image, text, video
from omnisift.testing.reference import literal_keep_mask

HIDDEN = 32


def _selector(seed: int = 0) -> VisionGuidedAudioSelector:
    torch.manual_seed(seed)
    return VisionGuidedAudioSelector(HIDDEN, width=32, heads=4).eval()


def _random_sample(rng: random.Random) -> list:
    kind = rng.choice(["av", "av", "av", "video", "two", "image", "text", "slow", "audio"])
    grid = (rng.choice([1, 2, 3]), rng.choice([1, 2, 4]))
    seconds = rng.choice([1, 2, 3, 5, 7, 12, 21, 30, 45, 90])
    pre, post = text(rng.randint(1, 6)), text(rng.randint(1, 6))
    if kind == "av":
        return [pre, av_clip(seconds, *grid), post]
    if kind == "slow":  # below 1 fps: grids split across chunks
        return [pre, av_clip(seconds * 4, *grid, fps=rng.choice([0.5, 0.25, 0.75])), post]
    if kind == "video":
        return [pre, video(seconds, *grid), post]
    if kind == "two":
        return [
            pre,
            av_clip(rng.choice([1, 3, 5]), *grid),
            text(2),
            av_clip(rng.choice([2, 5, 7]), 2, 2),
            post,
        ]
    if kind == "image":
        return [pre, image(2, 2), text(2), av_clip(seconds, *grid), post]
    if kind == "audio":
        return [pre, audio(rng.randint(2, 40)), text(2), av_clip(seconds, *grid), post]
    return [text(rng.randint(3, 20))]


CASES = list(range(48))


@pytest.mark.parametrize("case", CASES)
def test_parity_with_literal_reference(case: int) -> None:
    rng = random.Random(case)
    samples = [_random_sample(rng) for _ in range(rng.randint(1, 4))]
    batch = build_batch(samples, HIDDEN, seed=case)
    video_drop = rng.choice([0.0, 0.1, 0.29, 0.5, 0.7, 0.85, 0.95])
    audio_drop = rng.choice([0.0, 0.3, 0.5, 0.9])
    selector = _selector(case)
    with torch.no_grad():
        got = keep_mask(**batch.as_kwargs(), selector=selector, video_drop=video_drop, audio_drop=audio_drop)
        want = literal_keep_mask(
            **batch.as_kwargs(), selector=selector, video_drop=video_drop, audio_drop=audio_drop
        )
    assert torch.equal(got, want), f"case {case}: {(got != want).nonzero().tolist()[:10]}"


def _sample_alone(batch, i: int) -> dict:
    """keep_mask arguments of sample `i` alone, padding removed."""
    valid = batch.attention_mask[i].bool()
    one = {
        k: v[i : i + 1, valid] for k, v in batch.as_kwargs().items() if k not in ("position_ids", "token_ids")
    }
    return {**one, "position_ids": batch.position_ids[:, i : i + 1, valid], "token_ids": batch.token_ids}


def test_batch_equals_each_sample_alone() -> None:
    samples = [[text(3), av_clip(9, 2, 3), text(2)], [text(5), av_clip(4, 2, 2)], [text(4)], [video(6, 2, 2)]]
    selector = _selector()
    batch = build_batch(samples, HIDDEN, seed=3)
    with torch.no_grad():
        together = keep_mask(**batch.as_kwargs(), selector=selector)
    for i, _sample in enumerate(samples):
        valid = batch.attention_mask[i].bool()
        one = _sample_alone(batch, i)
        with torch.no_grad():
            alone = keep_mask(**one, selector=selector)
        assert torch.equal(together[i, valid], alone[0])


def test_text_special_image_and_padding_never_dropped() -> None:
    batch = build_batch([[text(4), image(2, 2), av_clip(6, 2, 2), text(3)], [text(2)]], HIDDEN)
    with torch.no_grad():
        keep = keep_mask(**batch.as_kwargs(), selector=_selector(), video_drop=0.9, audio_drop=0.9)
    media = (batch.input_ids == 151656) | (batch.input_ids == 151646)
    assert keep[~media].all()
    assert not keep[media].all()


def test_video_only_needs_no_selector_and_separate_audio_is_untouched() -> None:
    batch = build_batch([[text(2), audio(30), text(2), video(8, 2, 2), text(2)]], HIDDEN)
    keep = keep_mask(**batch.as_kwargs(), video_drop=0.5, audio_drop=0.0)
    is_audio = batch.input_ids == 151646
    is_video = batch.input_ids == 151656
    assert keep[is_audio].all()
    assert keep[is_video].sum() == is_video.sum() // 2


def test_audio_before_first_grid_and_groups_never_cross_videos() -> None:
    batch = build_batch([[text(2), av_clip(3, 2, 2), text(1), av_clip(3, 2, 2), text(2)]], HIDDEN)
    layout = omnisift.build_layout(
        batch.input_ids, batch.position_ids[0], batch.attention_mask, batch.token_ids
    )
    # 3 s at 2 fps = 3 grids per video -> groups (0,1), (2) and (3,4), (5)
    assert layout.grid_group.tolist() == [0, 0, 1, 2, 2, 3]
    assert layout.grid_video_start.tolist() == [True, False, False, True, False, False]
    # every audio token of the second video belongs to a group of the second video
    second = layout.audio_flat >= (batch.input_ids[0] == 151656).nonzero()[12].item()
    assert (layout.audio_group[second] >= 2).all()


def test_selector_required_when_audio_dropped() -> None:
    batch = build_batch([[text(2), av_clip(4, 2, 2)]], HIDDEN)
    with pytest.raises(ValueError, match="selector"):
        keep_mask(**batch.as_kwargs())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"video_drop": 1.0}, "video_drop"),
        ({"video_drop": -0.1}, "video_drop"),
        ({"audio_drop": 1.5}, "audio_drop"),
        ({"retain": 0.0}, "retain"),
        ({"retain": 1.2}, "retain"),
    ],
)
def test_bad_ratios(kwargs, message) -> None:
    batch = build_batch([[text(2), av_clip(4, 2, 2)]], HIDDEN)
    with pytest.raises(ValueError, match=message):
        keep_mask(**batch.as_kwargs(), selector=_selector(), **kwargs)


def test_bad_shapes_and_selector_size() -> None:
    batch = build_batch([[text(2), av_clip(4, 2, 2)]], HIDDEN)
    kw = batch.as_kwargs()
    with pytest.raises(ValueError, match="3-row"):
        keep_mask(**{**kw, "position_ids": kw["position_ids"][:2]}, selector=_selector())
    with pytest.raises(ValueError, match="inputs_embeds"):
        keep_mask(**{**kw, "inputs_embeds": kw["inputs_embeds"][0]}, selector=_selector())
    with pytest.raises(ValueError, match="disagree"):
        keep_mask(**{**kw, "input_ids": kw["input_ids"][:, 1:]}, selector=_selector())
    with pytest.raises(ValueError, match="attention_mask"):
        keep_mask(**{**kw, "attention_mask": kw["attention_mask"][:, 1:]}, selector=_selector())
    with pytest.raises(ValueError, match="hidden size 48"):
        keep_mask(**kw, selector=VisionGuidedAudioSelector(48, width=32, heads=4))


def test_nan_scores_are_an_error() -> None:
    batch = build_batch([[text(2), av_clip(4, 2, 2)]], HIDDEN)
    selector = _selector()
    with torch.no_grad():
        selector.score_head[2].bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        keep_mask(**batch.as_kwargs(), selector=selector)


@pytest.mark.parametrize("retain", [1.0, 0.5, 0.35, 0.25, 0.1, 0.02])
def test_retain_is_solved_per_sample(retain: float) -> None:
    samples = [[text(3), av_clip(20, 2, 4), text(2)], [text(5), av_clip(7, 3, 3)], [video(10, 2, 2)]]
    batch = build_batch(samples, HIDDEN)
    with torch.no_grad():
        result = select_tokens(**batch.as_kwargs(), selector=_selector(), retain=retain)
    for stats, vd, ad in zip(
        result.stats(), result.budget.video_drop.tolist(), result.budget.audio_drop.tolist()
    ):
        total = stats.video_before + stats.audio_before
        if stats.video_after + stats.audio_after > retain * total + 1e-9:  # unreachable: the most is dropped
            assert vd > 0.999 and (ad > 0.999 or stats.audio_before == 0)
        assert ad >= 0.3 or vd == 0  # audio drop lowered only when no video needs dropping
        assert vd < 1
    if retain == 1.0:
        assert result.keep.all()
    # with the solved drops given explicitly, the same mask comes out
    for i in range(len(samples)):
        valid = batch.attention_mask[i].bool()
        one = _sample_alone(batch, i)
        with torch.no_grad():
            direct = keep_mask(
                **one,
                selector=_selector(),
                video_drop=float(result.budget.video_drop[i]),
                audio_drop=float(result.budget.audio_drop[i]),
            )
        assert torch.equal(direct[0], result.keep[i, valid])
        vd = float(result.budget.video_drop[i])
        if 0 < vd < 0.999:  # minimal: any smaller video drop keeps more than the target
            with torch.no_grad():
                more = keep_mask(
                    **one,
                    selector=_selector(),
                    video_drop=vd - 1e-7,
                    audio_drop=float(result.budget.audio_drop[i]),
                )
            stats = result.stats()[i]
            assert more[0].sum() > direct[0].sum() or stats.length_after == more[0].sum()
            total = stats.video_before + stats.audio_before
            media_kept = int(more[0].sum()) - (stats.length_before - total)
            assert media_kept > retain * total


def test_straight_through_value_is_exactly_one_and_gradient_reaches_selector() -> None:
    batch = build_batch([[text(2), av_clip(6, 2, 2), text(2)], [text(3), av_clip(3, 2, 2)]], HIDDEN)
    selector = _selector().train()
    embeds = batch.inputs_embeds.clone().requires_grad_(True)
    result = select_tokens(**{**batch.as_kwargs(), "inputs_embeds": embeds}, selector=selector)
    assert torch.equal(result.inputs_embeds.detach(), batch.inputs_embeds)
    result.inputs_embeds[result.keep].pow(2).sum().backward()
    for name, param in selector.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    selector.eval()
    with torch.no_grad():
        plain = select_tokens(**batch.as_kwargs(), selector=selector)
    assert plain.inputs_embeds is batch.inputs_embeds
    assert torch.equal(plain.keep, result.keep)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_straight_through_factor_is_one_for_many_scores(dtype) -> None:
    scores = torch.rand(100_000).to(dtype)
    factor = (torch.ones_like(scores) - scores).detach() + scores
    assert torch.equal(factor, torch.ones_like(factor))


def test_inference_mode_then_normal_mode() -> None:
    batch = build_batch([[text(2), av_clip(6, 2, 2), text(2)]], HIDDEN)
    with torch.inference_mode():
        first = keep_mask(**batch.as_kwargs(), selector=_selector())
    with torch.no_grad():
        second = keep_mask(**batch.as_kwargs(), selector=_selector())
    with torch.inference_mode():
        third = keep_mask(**batch.as_kwargs(), selector=_selector())
    assert torch.equal(first, second) and torch.equal(second, third)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_strided_stvp_reads_noncontiguous_and_offset_embeddings(dtype: torch.dtype) -> None:
    """The periodic (as_strided) STVP path gives the gather path's scores on a slice of wider embeddings and
    on a contiguous view that starts inside its storage, not scores of the wrong rows."""
    from omnisift.methods.omnisift import gather_pairs, periodic_grids, stvp_pair_scores, stvp_scores

    batch = build_batch([[text(3), av_clip(7, 2, 4), text(2)]], HIDDEN, seed=5)
    layout = omnisift.build_layout(
        batch.input_ids, batch.position_ids[0], batch.attention_mask, token_ids=batch.token_ids
    )
    flat = batch.inputs_embeds.reshape(-1, HIDDEN).to(dtype)
    index, present = layout.grid_index_matrix()
    assert periodic_grids(layout, index, present) is not None  # one clip at 2 fps: the strided path runs
    pairs, _, pair_present, slot_of_grid = gather_pairs(layout, flat)
    want = stvp_pair_scores(pairs, pair_present)[slot_of_grid]

    noise = torch.randn(flat.shape[0] + 1, 3 * HIDDEN).to(dtype) * 5
    wide = torch.cat([noise[:-1, :HIDDEN], flat, noise[:-1, HIDDEN:]], dim=1)
    sliced = wide[:, HIDDEN : 2 * HIDDEN]  # rows 3 * HIDDEN apart: not contiguous
    shifted = torch.cat([noise[:1, :HIDDEN], flat])[1:]  # contiguous, storage offset HIDDEN
    assert not sliced.is_contiguous() and shifted.storage_offset() == HIDDEN
    tolerance = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    for view in (flat, sliced, shifted):
        scores, got_present, _ = stvp_scores(layout, view)
        torch.testing.assert_close(scores[got_present].float(), want[got_present].float(), **tolerance)
