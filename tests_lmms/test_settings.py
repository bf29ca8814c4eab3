"""`--model_args` -> model source, compression and protocol (no lmms-eval needed)."""

from __future__ import annotations

import pytest

from omnisift.inputs import effective_protocol
from omnisift.lmms_eval.settings import identity, parse_model_args, protocol_for
from omnisift.loading import load_model
from omnisift.models import adapter_for_tiny


def test_budget_and_method_parameters_reach_the_compression() -> None:
    # What lmms-eval hands over for "pretrained=tiny,method=omnizip,retain=0.25,knn=3,merge_size=2":
    settings = parse_model_args(
        {
            "pretrained": "tiny",
            "method": "omnizip",
            "retain": 0.25,
            "knn": 3,
            "merge_size": 2,
            "batch_size": "4",
        }
    )
    described = settings.compression().to_dict()
    assert described["retain"] == 0.25
    assert described["method"]["name"] == "omnizip"
    assert (described["method"]["knn"], described["method"]["merge_size"]) == (3, 2)
    assert settings.batch_size == 4


def test_text_values_of_method_parameters_are_read_as_json() -> None:
    settings = parse_model_args({"pretrained": "tiny", "method": "omnizip", "knn": "[1,2]", "note": "abc"})
    assert settings.method_params == {"knn": [1, 2], "note": "abc"}


def test_unknown_method_parameter_is_refused_by_name() -> None:
    settings = parse_model_args({"pretrained": "tiny", "method": "omnizip", "bogus": 1})
    with pytest.raises(ValueError, match="bogus"):
        settings.compression()


def test_no_compression_and_protocol_settings() -> None:
    settings = parse_model_args(
        {"pretrained": "/ckpt/x", "method": "none", "fps": 1, "max_frames": 64, "use_audio": False}
    )
    assert settings.compression() is None
    sampling = settings.protocol.sampling
    assert (sampling.fps, sampling.max_frames, settings.protocol.use_audio) == (1.0, 64, False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"method": "omnisift"}, "pretrained"),
        ({"pretrained": "tiny", "retain": "lots"}, "retain"),
        ({"pretrained": "tiny", "use_audio": "maybe"}, "use_audio"),
        ({"pretrained": "tiny", "batch_size": 0}, "batch_size"),
        ({"pretrained": "tiny", "seed": 1.5}, "seed"),
    ],
)
def test_bad_values_are_refused_naming_the_argument(args: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_model_args(args)


def test_two_budgets_have_two_identities() -> None:
    one = identity(parse_model_args({"pretrained": "tiny", "retain": 0.25}))
    two = identity(parse_model_args({"pretrained": "tiny", "retain": 0.5}))
    assert one != two and '"retain": 0.25' in one


def test_effective_protocol_uses_fixture_pixel_bounds_and_the_audio_window() -> None:
    loaded = load_model("tiny")
    settings = parse_model_args({"pretrained": "tiny"})
    protocol = effective_protocol(settings.protocol, "tiny", loaded.processor)
    low, high = adapter_for_tiny("tiny").tiny_pixel_bounds
    extractor = loaded.processor.feature_extractor
    assert (protocol.sampling.min_pixels, protocol.sampling.max_pixels) == (low, high)
    assert protocol.sampling.audio_window_s == extractor.n_samples / extractor.sampling_rate


def test_a_preset_follows_the_task_and_single_settings_override_it() -> None:
    settings = parse_model_args({"pretrained": "tiny", "protocol": "seats", "fps": 1})
    daily = protocol_for(settings, "omnisift_dailyomni")
    mme = protocol_for(settings, "omnisift_videomme")
    assert (daily.sampling.max_frames, mme.sampling.max_frames) == (128, 768)
    assert daily.sampling.fps == mme.sampling.fps == 1.0 and daily.max_new_tokens == 32
    assert daily.system_prompt is not None and mme.system_prompt is None
    assert '"preset": "seats"' in identity(settings)
    with pytest.raises(ValueError, match="protocol='nope' is not allowed"):
        parse_model_args({"pretrained": "tiny", "protocol": "nope"})
