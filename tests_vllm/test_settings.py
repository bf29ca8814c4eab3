"""engine_args, request overrides and refusals (no engine started)."""

from __future__ import annotations

import json

import pytest

from omnisift import CompressionConfig
from omnisift.vllm import ARCHITECTURE, engine_args, request_kwargs, serve_args
from omnisift.vllm.settings import Budget3, ServingSettings, request_budget


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
    assert _settings(CompressionConfig(method="evs", video_drop=0.6, audio_drop=0.2)).default == Budget3(
        0.6, 0.2, None
    )
    assert (
        json.loads(serve_args(CompressionConfig(method="evs"))[1])
        == engine_args(CompressionConfig(method="evs"))["hf_overrides"]
    )


def test_methods_needing_encoder_internals_are_refused():
    with pytest.raises(ValueError, match="layout-only"):
        engine_args(CompressionConfig(method="omnizip"))


def test_request_override_and_validation():
    settings = _settings(CompressionConfig(method="evs"))
    assert request_budget(settings, request_kwargs(retain=0.25)) == Budget3(0.7, 0.3, 0.25)
    with pytest.raises(ValueError, match="retain"):
        request_budget(settings, {"omnisift_retain": 1.5})
    with pytest.raises(ValueError, match="no compression method"):
        request_budget(_settings(None), request_kwargs(retain=0.5))
