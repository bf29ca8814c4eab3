"""engine_args, request overrides and refusals (no engine started)."""

from __future__ import annotations

import json

import pytest

from omnisift import CompressionConfig
from omnisift.budget import BudgetSettings
from omnisift.vllm import ARCHITECTURE, engine_args, request_kwargs, serve_args
from omnisift.vllm.settings import ServingSettings, request_budget


class _Config:
    pass


def _settings(config: CompressionConfig | None) -> ServingSettings:
    hf = _Config()
    if config is not None:
        hf.omnisift = engine_args(config)["hf_overrides"]["omnisift"]
    return ServingSettings.from_hf_config(hf)


def test_engine_args_select_our_thinker_and_carry_the_config():
    args = engine_args(CompressionConfig(method="evs", video_drop=0.6, audio_drop=0.2))
    assert args["hf_overrides"]["architectures"] == [ARCHITECTURE]
    assert args["hf_overrides"]["omnisift"]["method"]["name"] == "evs"
    assert _settings(
        CompressionConfig(method="evs", video_drop=0.6, audio_drop=0.2)
    ).default == BudgetSettings(0.6, 0.2, None)
    assert (
        json.loads(serve_args(CompressionConfig(method="evs"))[1])
        == engine_args(CompressionConfig(method="evs"))["hf_overrides"]
    )


def test_methods_needing_encoder_internals_are_refused():
    with pytest.raises(ValueError, match="layout-only"):
        engine_args(CompressionConfig(method="omnizip"))


def test_request_override_and_validation():
    settings = _settings(CompressionConfig(method="evs"))
    assert request_budget(settings, request_kwargs(retain=0.25)) == BudgetSettings(0.7, 0.3, 0.25)
    with pytest.raises(ValueError, match="retain"):
        request_budget(settings, {"omnisift_retain": 1.5})
    with pytest.raises(ValueError, match="no compression method"):
        request_budget(_settings(None), request_kwargs(retain=0.5))


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("omnisift_method", None),
        ("retian", "omnisift_retain"),
        ("retain", "omnisift_retain"),
        ("omnisift_vido_drop", "omnisift_video_drop"),
    ],
)
def test_request_keys_omnisift_does_not_read_are_refused(key, hint):
    settings = _settings(CompressionConfig(method="evs"))
    with pytest.raises(ValueError, match=key) as error:
        request_budget(settings, {key: 0.3})
    if hint is not None:
        assert f"did you mean {hint!r}" in str(error.value)
    if key != "retain":  # request_kwargs(retain=...) is the right spelling
        with pytest.raises(ValueError, match=key):
            request_kwargs(**{key: 0.3})


def test_processor_kwargs_of_other_libraries_pass():
    kwargs = request_kwargs(retain=0.3, fps=2.0, min_pixels=1, max_pixels=2, size={"longest_edge": 3})
    assert request_budget(_settings(CompressionConfig(method="evs")), kwargs).retain == 0.3


@pytest.mark.parametrize("value", ["a quarter", None, True, float("nan"), [0.3]])
def test_non_numeric_request_value_names_the_field(value):
    settings = _settings(CompressionConfig(method="evs"))
    if value is None:  # explicit None: the engine's value
        assert request_budget(settings, {"omnisift_retain": None}).retain is None
        return
    with pytest.raises(ValueError, match="omnisift_retain"):
        request_budget(settings, {"omnisift_retain": value})


def test_retain_overrides_the_drops():
    """A request's retain replaces the drops (engine's or request's) with ones solved for the target."""
    from omnisift.vllm.blocks import build_block
    from omnisift.vllm.plan import kept_count, prompt_drops

    settings = _settings(CompressionConfig(method="evs", video_drop=0.1, audio_drop=0.1))
    budget = request_budget(settings, request_kwargs(retain=0.25, video_drop=0.05))
    block = build_block((8, 8, 8), 1.0, 200)
    drops = prompt_drops([block], budget.video_drop, budget.audio_drop, budget.retain, settings.token_ids)
    assert drops != (0.05, 0.1)
    assert kept_count(block, *drops, settings.token_ids) / len(block) == pytest.approx(0.25, abs=0.02)
