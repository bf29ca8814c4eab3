"""The three comparable budgets: `budget="layer-avg"` puts a pre-LLM method at SEATS' layer-averaged
retention for the same R, and the config refuses readings that do not apply."""

from __future__ import annotations

import argparse

import pytest
import torch
from inner_helpers import SEATS_PARAMS

from omnisift import CompressionConfig, VisionGuidedAudioSelector, attach
from omnisift.config import add_compression_arguments, compression_from_args

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _layer_averages(model, batch, config) -> list[tuple[float, float, float]]:
    with attach(model, config) as handle, torch.no_grad():
        model(**batch, use_audio_in_video=True)
    return [
        (s.layer_avg_kept_video, s.layer_avg_kept_audio, s.prefill_flops_ratio) for s in handle.last_stats
    ]


def test_layer_avg_budget_matches_seats_layer_averages(deep_thinker, batch) -> None:
    torch.manual_seed(0)
    selector = VisionGuidedAudioSelector(deep_thinker.config.text_config.hidden_size).eval()
    seats = _layer_averages(
        deep_thinker, batch, CompressionConfig(method="seats", retain=0.25, method_params=dict(SEATS_PARAMS))
    )
    layer_avg = _layer_averages(
        deep_thinker, batch, CompressionConfig(retain=0.25, budget="layer-avg", selector=selector)
    )
    at_input = _layer_averages(deep_thinker, batch, CompressionConfig(retain=0.25, selector=selector))
    for (sv, sa, sf), (ov, oa, of), (iv, ia, _) in zip(seats, layer_avg, at_input, strict=True):
        # SEATS' pair for R = 0.25 is (0.20, 0.55); both methods round per grid / window, and the tiny
        # model's grids hold 8 tokens: half a token of 8 is 0.0625
        assert ov == pytest.approx(sv, abs=0.07) and oa == pytest.approx(sa, abs=0.07)
        assert ov == pytest.approx(0.20, abs=0.07) and oa == pytest.approx(0.55, abs=0.07)
        assert of == pytest.approx(sf, abs=0.1)  # near-equal FLOPs too (attention's S^2 and layout differ)
        assert (iv, ia) != pytest.approx((ov, oa), abs=0.01)  # the input reading is a different budget


def test_layer_avg_off_seats_table_is_the_input_fraction() -> None:
    config = CompressionConfig(method="random", retain=0.3, budget="layer-avg")
    assert config.budget_settings.retain == 0.3
    table = CompressionConfig(method="random", retain=0.10, budget="layer-avg").budget_settings
    assert (table.video_drop, table.audio_drop, table.retain) == pytest.approx((0.94, 0.65, None))


def test_budget_is_checked_and_round_trips() -> None:
    with pytest.raises(ValueError, match="'input' .* or 'layer-avg'"):
        CompressionConfig(method="random", retain=0.25, budget="flops")
    with pytest.raises(ValueError, match="no retain is set"):
        CompressionConfig(method="random", budget="layer-avg")
    with pytest.raises(ValueError, match="pre-LLM methods only"):
        CompressionConfig(method="fastv", retain=0.25, budget="input")
    config = CompressionConfig(method="random", retain=0.25, budget="layer-avg")
    assert CompressionConfig.from_dict(config.to_dict()).budget == "layer-avg"
    assert (
        "budget" not in CompressionConfig(method="random", retain=0.25).to_dict()
    )  # old run identities hold
    parser = argparse.ArgumentParser()
    add_compression_arguments(parser)
    args = parser.parse_args(["--method", "random", "--retain", "0.25", "--budget", "layer-avg"])
    assert compression_from_args(args).budget == "layer-avg"
