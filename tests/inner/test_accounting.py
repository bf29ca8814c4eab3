"""Layer-averaged kept fractions and relative prefill FLOPs of every kind of method, against a brute-force
count: the tokens each decoder layer actually received (read by hooks on the layers), summed over layers."""

from __future__ import annotations

import pytest
import torch
from inner_helpers import LAYERS, SEATS_PARAMS

from omnisift import CompressionConfig, attach
from omnisift.inner import layer_weighted, mean_flops_ratio, stats_fields
from omnisift.models.qwen2_5_omni import fixtures as tiny

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFIGS = {
    "random": CompressionConfig(method="random", video_drop=0.6, audio_drop=0.3),
    "seats": CompressionConfig(method="seats", retain=0.25, method_params=dict(SEATS_PARAMS)),
    "fastv-om": CompressionConfig(method="fastv-om", retain=0.25),
}


def _brute_flops(lengths: list[int], full: int, config) -> float:
    """LLM prefill FLOPs written out per layer: q/k/v/o projections, gated MLP and both attention matmuls
    (QK^T and AV over all S x S pairs), one multiply-add = 1."""
    text = config.text_config if hasattr(config, "text_config") else config
    heads, kv, hidden = text.num_attention_heads, text.num_key_value_heads, text.hidden_size
    dim = getattr(text, "head_dim", None) or hidden // heads

    def layer(s: int) -> float:
        q = o = s * hidden * heads * dim
        k = v = s * hidden * kv * dim
        mlp = 3 * s * hidden * text.intermediate_size
        scores = values = s * s * heads * dim
        return q + k + v + o + mlp + scores + values

    return sum(layer(s) for s in lengths) / (len(lengths) * layer(full))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_stats_match_the_tokens_each_layer_received(name, deep_thinker, singles) -> None:
    seen: list[int] = []

    def count(module, args, kwargs) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        seen.append(hidden.shape[1])

    for single in singles:
        seen.clear()
        with attach(deep_thinker, CONFIGS[name]) as handle, torch.no_grad():
            # registered after attach's own hooks, so each layer is seen with what it really runs on
            hooks = [
                layer.register_forward_pre_hook(count, with_kwargs=True)
                for layer in deep_thinker.model.language_model.layers
            ]
            try:
                deep_thinker(**single, use_audio_in_video=True)
            finally:
                for hook in hooks:
                    hook.remove()
        (sample,) = handle.last_stats
        assert len(seen) == LAYERS
        ids = single["input_ids"][0]
        media = int(((ids == tiny.VIDEO_ID) | (ids == tiny.AUDIO_ID)).sum())
        text = ids.numel() - media
        assert sample.video_before + sample.audio_before == media
        present = [length - text for length in seen]  # text always stays: the rest is audio/video
        combined = (
            sample.layer_avg_kept_video * sample.video_before
            + sample.layer_avg_kept_audio * sample.audio_before
        )
        assert combined / media == pytest.approx(sum(present) / (LAYERS * media))
        assert sample.prefill_flops_ratio == pytest.approx(
            _brute_flops(seen, ids.numel(), deep_thinker.config)
        )
        kept = handle.last_kept_positions[0]
        assert kept[0].numel() == sample.length_after == seen[0]
        if name == "random":  # one stage, the LLM input, for every layer
            assert sorted(kept) == [0]
            assert sample.layer_avg_kept_video == pytest.approx(sample.video_after / sample.video_before)
            assert len(set(seen)) == 1
        else:
            assert len(set(seen)) > 1 and sorted(kept)[0] == 0
            assert [seen[layer] for layer in sorted(kept)] == [kept[layer].numel() for layer in sorted(kept)]


def test_run_aggregates_weight_layer_averages_by_tokens_and_average_flops() -> None:
    rows = [
        {
            "video_before": 100,
            "audio_before": 0,
            "video_after": 50,
            "audio_after": 0,
            "layer_avg_kept_video": 0.2,
            "layer_avg_kept_audio": 1.0,
            "prefill_flops_ratio": 0.1,
        },
        {
            "video_before": 100,
            "audio_before": 200,
            "video_after": 100,
            "audio_after": 100,
            "layer_avg_kept_video": 0.5,
            "layer_avg_kept_audio": 0.25,
            "prefill_flops_ratio": 0.5,
        },
        {"video_before": 0, "audio_before": 100, "video_after": 0, "audio_after": 40},  # an older row
    ]
    assert layer_weighted(rows) == pytest.approx((20 + 50 + 50 + 40) / 500)
    assert mean_flops_ratio(rows) == pytest.approx(0.3)
    assert layer_weighted([]) is None and mean_flops_ratio(rows[2:]) is None


def test_stats_fields_of_an_uncompressed_sample_are_full() -> None:
    from omnisift.compress import SampleStats

    assert stats_fields(SampleStats(4, 4, 2, 2, 10, 10)) == {
        "layer_avg_kept_video": 1.0,
        "layer_avg_kept_audio": 1.0,
        "prefill_flops_ratio": 1.0,
    }


def test_kept_positions_of_a_call_that_drops_nothing_are_every_token(deep_thinker, singles) -> None:
    config = CompressionConfig(method="random", video_drop=0.0, audio_drop=0.0)
    with attach(deep_thinker, config) as handle, torch.no_grad():
        deep_thinker(**singles[0], use_audio_in_video=True)
    (kept,) = handle.last_kept_positions
    (sample,) = handle.last_stats
    assert sorted(kept) == [0] and kept[0].tolist() == list(range(singles[0]["input_ids"].shape[1]))
    assert sample.layer_avg_kept_video == sample.prefill_flops_ratio == 1.0
