"""Properties every registered method must have (one parametrized matrix over the registry)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from methods_helpers import ALL_METHODS, HIDDEN, counts, mixed_batch, run

from omnisift import build_layout, get_method
from omnisift.methods import METHODS, describe_methods, setting_fields
from omnisift.models.qwen2_5_omni import TOKEN_IDS
from omnisift.models.qwen2_5_omni.synthetic import audio, build_batch, image, text

IDS = TOKEN_IDS


@pytest.fixture(scope="module")
def mixed():
    return mixed_batch()


@pytest.fixture(scope="module")
def reference(mixed, selector):
    """omnisift's counts for the budgets of the matrix."""
    return {key: counts(run(mixed, "omnisift", selector, **kw)) for key, kw in BUDGETS.items()}


BUDGETS = {
    "drops": {"video_drop": 0.7, "audio_drop": 0.3},
    "video_only_drop": {"video_drop": 0.5, "audio_drop": 0.0},
    "retain": {"retain": 0.45, "audio_drop": 0.3},
}


@pytest.mark.parametrize("method", ALL_METHODS)
def test_text_special_image_padding_never_dropped(method, mixed, selector):
    result = run(mixed, method, selector, video_drop=0.7, audio_drop=0.3)
    layout = build_layout(mixed.input_ids, mixed.position_ids[0], mixed.attention_mask, mixed.token_ids)
    protected = ~(layout.is_video | layout.is_audio)  # text, specials, images and padding
    assert result.keep.dtype == torch.bool and result.keep.shape == mixed.input_ids.shape
    assert bool(result.keep[protected].all())
    assert bool(result.keep[mixed.input_ids == IDS.image].all())
    assert bool(result.keep[mixed.attention_mask == 0].all())
    # Audio outside every 2-s group (the separate audio input) is never touched.
    ungrouped = layout.audio_flat[layout.audio_group < 0]
    assert bool(result.keep.reshape(-1)[ungrouped].all())
    # Something was dropped from both modalities.
    assert not bool(result.keep[layout.is_video].all()) and not bool(result.keep[layout.is_audio].all())


@pytest.mark.parametrize("budget", sorted(BUDGETS))
@pytest.mark.parametrize("method", ALL_METHODS)
def test_budget_equals_omnisift(method, budget, mixed, selector, reference):
    result = run(mixed, method, selector, **BUDGETS[budget])
    assert counts(result) == reference[budget]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_audio_drop_zero_keeps_all_audio(method, mixed):
    result = run(mixed, method, None, video_drop=0.6, audio_drop=0.0)
    layout = build_layout(mixed.input_ids, mixed.position_ids[0], mixed.attention_mask, mixed.token_ids)
    assert bool(result.keep[layout.is_audio].all())
    assert torch.equal(result.inputs_embeds, mixed.inputs_embeds)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_input_embeddings_never_modified(method, mixed, selector):
    before = mixed.inputs_embeds.clone()
    run(mixed, method, selector, video_drop=0.7, audio_drop=0.5)
    assert torch.equal(mixed.inputs_embeds, before)


@pytest.mark.parametrize("method", [m for m in ALL_METHODS if m != "random"])
def test_batch_equals_one_sample_at_a_time(method, mixed, selector):
    """Vectorized over the batch: each row's mask is the one of that sample selected alone.

    (The audio of video-only methods is a seeded draw over the whole batch, so only their video is compared.)
    """
    whole = run(mixed, method, selector, video_drop=0.6, audio_drop=0.4).keep
    compared = IDS.video if METHODS[method].modalities == "video" else None
    for i, segments in enumerate(mixed.segments):
        single = build_batch([segments], hidden_size=HIDDEN)
        n = single.input_ids.shape[1]
        single.inputs_embeds = mixed.inputs_embeds[i : i + 1, -n:].clone()
        alone = run(single, method, selector, video_drop=0.6, audio_drop=0.4).keep[0]
        rows = slice(None) if compared is None else single.input_ids[0] == compared
        assert torch.equal(whole[i, -n:][rows], alone[rows]), f"sample {i}"


@pytest.mark.parametrize("method", ALL_METHODS)
def test_bf16_inputs_keep_the_budget(method, selector):
    batch = mixed_batch(dtype=torch.bfloat16)
    half = copy.deepcopy(selector).to(torch.bfloat16)
    ref = counts(run(batch, "omnisift", half, video_drop=0.7, audio_drop=0.3))
    assert counts(run(batch, method, half, video_drop=0.7, audio_drop=0.3)) == ref


@pytest.mark.parametrize("method", ALL_METHODS)
def test_no_video_leaves_everything(method, selector):
    batch = build_batch(
        [[text(4), image(2, 2), audio(30), text(3)], [text(9), audio(12)]], hidden_size=HIDDEN
    )
    result = run(batch, method, selector, video_drop=0.7, audio_drop=0.3)
    assert bool(result.keep.all())


@pytest.mark.parametrize("method", ALL_METHODS)
def test_bad_drop_ratio_is_a_clear_error(method, mixed, selector):
    with pytest.raises(ValueError, match="video_drop"):
        run(mixed, method, selector, video_drop=1.2)
    with pytest.raises(ValueError, match="retain"):
        run(mixed, method, selector, retain=0.0)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_unknown_parameter_is_rejected(method):
    with pytest.raises(TypeError):
        get_method(method, no_such_parameter=1)


BAD_PARAMETERS = [
    ("dycoke", {"kv_pruning": True}, "KV cache pruning is not supported"),
    ("vidcom2", {"temperature": 0.0}, "temperature"),
    ("vidcom2", {"alphas": ()}, "alphas"),
    ("vidcom2", {"alphas": (0.5, -1.0)}, "alphas"),
    ("omnizip", {"merge_size": -1}, "merge_size"),
    ("omnizip", {"anchor_ratio": 1.5}, "anchor_ratio"),
    ("omnizip", {"knn": 0}, "knn"),
    ("omnizip", {"drop_min": 0.0}, "drop_min"),
    ("omnizip", {"drop_min": 0.8, "drop_max": 0.5}, "drop_min"),
]


@pytest.mark.parametrize(("method", "params", "message"), BAD_PARAMETERS)
def test_bad_method_parameters(method, params, message):
    with pytest.raises(ValueError, match=message):
        get_method(method, **params)


@pytest.mark.parametrize(
    "method", [m for m in ALL_METHODS if "selector" in {f.name for f in setting_fields(METHODS[m])}]
)
def test_selector_methods_need_a_selector(method, mixed):
    with pytest.raises(ValueError, match="selector"):
        run(mixed, method, None, video_drop=0.5, audio_drop=0.3)


def test_random_seed_must_be_an_int(mixed):
    with pytest.raises(ValueError, match="seed"):
        run(mixed, "random", None, seed="7")


def test_omnizip_rejects_incomplete_saliency(mixed):
    saliency = torch.full(mixed.input_ids.shape, float("nan"))
    with pytest.raises(ValueError, match="audio_saliency"):
        run(mixed, "omnizip", None, audio_saliency=saliency)
    with pytest.raises(ValueError, match="audio_saliency"):
        run(mixed, "omnizip", None, audio_saliency=torch.zeros(2, 3))


def test_catalog_lists_every_method():
    rows = describe_methods()
    assert [r["name"] for r in rows] == sorted(METHODS)
    assert {"seats", "fastv", "fastv-om"} <= {r["name"] for r in rows}
    for row in rows:
        cls = METHODS[row["name"]]
        assert set(row) >= {
            "name",
            "paper",
            "modalities",
            "uses",
            "summary",
        }
        assert row["paper"] and "arXiv" in row["paper"] and row["summary"]
        assert row["modalities"] in ("audio+video", "video", "audio")
        assert dataclasses.is_dataclass(cls)
    by_name = {r["name"]: r for r in rows}
    assert (
        by_name["omnizip"]["uses"] == "audio encoder attention" and by_name["evs"]["uses"] == "training-free"
    )
    assert "audio_saliency" not in by_name["omnizip"]["parameters"]  # a runtime input, not a setting
    assert by_name["vidcom2"]["parameters"]["temperature"] == 0.01


def test_method_instances_and_settings_reach_compression_config():
    from omnisift import CompressionConfig
    from omnisift.methods.omnizip import OmniZip

    config = CompressionConfig(method=OmniZip(knn=3), retain=0.3)
    assert config.method.knn == 3 and config.method_name == "omnizip"
    by_name = CompressionConfig(method="omnizip", method_params={"knn": 3, "merge_size": 1})
    assert (by_name.method.knn, by_name.method.merge_size) == (3, 1)
    assert by_name.to_dict()["method"] == {**by_name.to_dict()["method"], "name": "omnizip", "knn": 3}
    with pytest.raises(ValueError, match="method instance itself"):
        CompressionConfig(method=OmniZip(), method_params={"knn": 3})
    with pytest.raises(TypeError, match="has no parameter nope"):
        CompressionConfig(method="evs", method_params={"nope": 1})
