"""Properties of the inner-LLM methods' pre-LLM part (SEATS' Stage I; FastV keeps everything) on the
synthetic batch of the method matrix. Their LLM part is tested through attach in tests/inner."""

from __future__ import annotations

import pytest
import torch
from methods_helpers import HIDDEN, INNER_METHODS, mixed_batch, run

from omnisift import build_layout, get_method
from omnisift.inner.diversity import window_keep_counts
from omnisift.models.qwen2_5_omni.synthetic import build_batch


@pytest.fixture(scope="module")
def mixed():
    return mixed_batch()


def test_inner_methods_are_registered():
    assert set(INNER_METHODS) == {"seats", "fastv", "fastv-om"}


@pytest.mark.parametrize("method", INNER_METHODS)
def test_text_special_image_padding_kept_and_inputs_untouched(method, mixed):
    before = mixed.inputs_embeds.clone()
    result = run(mixed, method, retain=0.25)
    layout = build_layout(mixed.input_ids, mixed.position_ids[0], mixed.attention_mask, mixed.token_ids)
    assert bool(result.keep[~(layout.is_video | layout.is_audio)].all())
    assert torch.equal(mixed.inputs_embeds, before)
    if method != "seats":
        assert bool(result.keep.all())  # FastV drops nothing before the LLM


def test_seats_stage_one_keeps_its_window_counts(mixed):
    """Each 2-s video group keeps round(1.4 r n) of its n tokens (r = 0.20 at R = 0.25), audio likewise
    per 50-token run of one input."""
    result = run(mixed, "seats", retain=0.25)
    layout = build_layout(mixed.input_ids, mixed.position_ids[0], mixed.attention_mask, mixed.token_ids)
    group = layout.grid_group[layout.video_grid]
    kept = result.keep.reshape(-1)[layout.video_flat]
    sizes = torch.bincount(group)
    expected = window_keep_counts(sizes, 1.4 * 0.20)
    assert torch.equal(torch.bincount(group, weights=kept.double()).long(), expected)


@pytest.mark.parametrize("method", INNER_METHODS)
def test_batch_equals_one_sample_at_a_time(method, mixed):
    whole = run(mixed, method, retain=0.25).keep
    for i, segments in enumerate(mixed.segments):
        single = build_batch([segments], hidden_size=HIDDEN)
        n = single.input_ids.shape[1]
        single.inputs_embeds = mixed.inputs_embeds[i : i + 1, -n:].clone()
        assert torch.equal(whole[i, -n:], run(single, method, retain=0.25).keep[0]), f"sample {i}"


@pytest.mark.parametrize("method", INNER_METHODS)
def test_bf16_and_retain_one(method):
    batch = mixed_batch(dtype=torch.bfloat16)
    assert run(batch, method, retain=0.10).keep.shape == batch.input_ids.shape
    assert bool(run(batch, method, retain=1.0).keep.all())


@pytest.mark.parametrize("method", INNER_METHODS)
def test_budget_outside_the_table_is_refused(method, mixed):
    with pytest.raises(ValueError, match=r"0.1, 0.15, 0.25, 0.35"):
        run(mixed, method, retain=0.3)
    with pytest.raises(ValueError, match="retain"):
        run(mixed, method, retain=0.0)
    with pytest.raises(TypeError):
        get_method(method, no_such_parameter=1)


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("seats", {"drop_layers": [1, 2]}, "3 layer indices"),
        ("seats", {"audio_window": 0}, "audio_window"),
        ("fastv", {"k": 0}, "k must be"),
        ("fastv-om", {"video_retain": 0.2}, None),
    ],
)
def test_bad_settings(method, params, message, mixed):
    if message is None:  # half a pair: refused when the budget is read
        with pytest.raises(ValueError, match="both video_retain and audio_retain"):
            run(mixed, method, **params)
        return
    with pytest.raises(ValueError, match=message):
        get_method(method, **params)
