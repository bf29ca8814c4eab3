"""Inner-LLM methods (SEATS, FastV, FastV-om) through `attach` on an 8-layer tiny thinker, checked against
a literal one-sample reference (`inner_reference.py`), the stock model and each other."""

from __future__ import annotations

import pytest
import torch
from inner_helpers import LAYERS, SEATS_PARAMS
from inner_reference import run as reference_run

from omnisift import CompressionConfig, attach, build_layout
from omnisift.inner import block_schedule, retention_pair
from omnisift.inner.encoder_stats import EncoderAttentionRecorder
from omnisift.models import find_adapter
from omnisift.models.qwen2_5_omni import fixtures as tiny
from omnisift.testing.hooks import attached_then_removed, language_model_inputs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

STAGES = {"seats": [4, 5, 6, 7], "fastv": [2], "fastv-om": [2]}
PARAMS = {"seats": SEATS_PARAMS, "fastv": {}, "fastv-om": {}}


def _config(method: str, retain: float = 0.25) -> CompressionConfig:
    return CompressionConfig(method=method, retain=retain, method_params=dict(PARAMS[method]))


def _stage_one_stats(thinker, inputs):
    """The encoders' attention statistics of one sample, laid on its tokens (as Stage I reads them)."""
    recorder = EncoderAttentionRecorder(find_adapter(thinker))
    try:
        captured = language_model_inputs(thinker, inputs)
    finally:
        recorder.remove()
    adapter = find_adapter(thinker)
    layout = build_layout(
        inputs["input_ids"],
        captured["position_ids"][0],
        inputs["attention_mask"],
        token_ids=adapter.token_ids,
    )
    video, audio = recorder.take(layout)
    return video[0].tolist(), audio[0].tolist()


@pytest.mark.parametrize(
    ("drops", "late", "layers", "retain", "expected"),
    [
        ([16, 18, 20], 23, 28, 0.30, [0.9298, 0.7949, 0.2986]),
        ([16, 18, 20], 23, 28, 0.06, [0.9298, 0.7949, 0.2986]),
        ([16, 18, 20], 23, 28, 0.65, [0.9298, 0.7949, 0.2986]),
        ([4, 5, 6], 7, 8, 0.20, [0.9188, 0.7596, 0.1399]),
        ([27, 31, 35], 39, 48, 0.20, [0.9255, 0.7813, 0.239]),
    ],
)
def test_schedule_reproduces_the_published_vectors(drops, late, layers, retain, expected) -> None:
    assert block_schedule(drops, late, layers, retain) == expected


def test_retain_selects_the_published_pairs_and_refuses_others() -> None:
    assert retention_pair(0.25) == (0.20, 0.55)
    assert retention_pair(0.10) == (0.06, 0.35)
    assert retention_pair(None, 0.3, 0.4) == (0.3, 0.4)
    with pytest.raises(ValueError, match=r"0.1, 0.15, 0.25, 0.35"):
        retention_pair(0.3)
    with pytest.raises(ValueError, match="both video_retain and audio_retain"):
        retention_pair(0.25, 0.3, None)


@pytest.mark.parametrize("method", ["seats", "fastv", "fastv-om"])
def test_batch_matches_the_literal_reference(method, deep_thinker, batch, singles) -> None:
    """Left-padded batch vs one sample at a time in the reference: kept positions at every stage, the
    last-token logits and greedy tokens (generate against a manual decode on hand-trimmed caches)."""
    with attach(deep_thinker, _config(method)) as handle:
        with torch.no_grad():
            logits = deep_thinker(**batch, use_audio_in_video=True).logits[:, -1]
        kept = handle.last_kept_positions
        generated = deep_thinker.generate(**batch, use_audio_in_video=True, max_new_tokens=4, do_sample=False)
    generated = generated[:, batch["input_ids"].shape[1] :]
    pad = (batch["attention_mask"] == 0).sum(1).tolist()
    for b, single in enumerate(singles):
        stats = _stage_one_stats(deep_thinker, single) if method == "seats" else None
        ref_kept, ref_logits, ref_tokens = reference_run(
            deep_thinker, single, method, 0.25, STAGES[method], stats=stats, decode=4
        )
        assert sorted(kept[b]) == sorted([0, *STAGES[method]])
        for layer, positions in ref_kept.items():
            assert (kept[b][layer] - pad[b]).tolist() == positions, (method, b, layer)
        torch.testing.assert_close(logits[b], ref_logits, atol=2e-4, rtol=1e-4)
        assert generated[b].tolist() == ref_tokens


@pytest.mark.parametrize("method", ["seats", "fastv-om"])
def test_stats_report_layer_averages_and_flops(method, deep_thinker, batch) -> None:
    with attach(deep_thinker, _config(method)) as handle, torch.no_grad():
        deep_thinker(**batch, use_audio_in_video=True)
    for sample, kept in zip(handle.last_stats, handle.last_kept_positions):
        bounds = sorted(kept) + [LAYERS]
        ids = batch["input_ids"][handle.last_stats.index(sample)]
        video = [int((ids[kept[a]] == tiny.VIDEO_ID).sum()) * (b - a) for a, b in zip(bounds, bounds[1:])]
        assert sample.layer_avg_kept_video == pytest.approx(sum(video) / (LAYERS * sample.video_before))
        assert 0.0 < sample.prefill_flops_ratio < 1.0
        media = sample.video_before + sample.audio_before
        combined = (
            sample.layer_avg_kept_video * sample.video_before
            + sample.layer_avg_kept_audio * sample.audio_before
        )
        target = 0.20 * sample.video_before + 0.55 * sample.audio_before  # SEATS' pair for R = 0.25
        assert combined / media == pytest.approx(target / media, abs=0.05)


def test_sdpa_and_eager_keep_the_same_tokens(batch) -> None:
    kept = {}
    for impl in ("sdpa", "eager"):
        model = tiny.tiny_thinker(seed=0, num_layers=LAYERS, attn_implementation=impl)
        with attach(model, _config("seats")) as handle, torch.no_grad():
            model(**batch, use_audio_in_video=True)
        kept[impl] = [{k: v.tolist() for k, v in sample.items()} for sample in handle.last_kept_positions]
    assert kept["sdpa"] == kept["eager"]


@pytest.mark.parametrize("method", ["seats", "fastv", "fastv-om"])
def test_retain_one_is_bit_identical_and_remove_restores_stock(method, deep_thinker, batch) -> None:
    with torch.no_grad():
        stock = deep_thinker(**batch, use_audio_in_video=True).logits
    stock_tokens = deep_thinker.generate(**batch, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
    with attach(deep_thinker, _config(method, retain=1.0)), torch.no_grad():
        same = deep_thinker(**batch, use_audio_in_video=True).logits
        same_tokens = deep_thinker.generate(
            **batch, use_audio_in_video=True, max_new_tokens=3, do_sample=False
        )
    assert torch.equal(same, stock) and torch.equal(same_tokens, stock_tokens)
    handle = attach(deep_thinker, _config(method))
    pruned, after = attached_then_removed(deep_thinker, batch, handle)
    assert pruned.shape[1] < stock.shape[1]
    assert torch.equal(after, stock)
    assert not any(layer._forward_pre_hooks for layer in deep_thinker.model.language_model.layers)


def test_every_layer_cache_has_one_length_and_beam_and_sampling_run(deep_thinker, batch) -> None:
    with attach(deep_thinker, _config("seats")) as handle:
        with torch.no_grad():
            out = deep_thinker(**batch, use_audio_in_video=True, use_cache=True)
        lengths = {layer.keys.shape[-2] for layer in out.past_key_values.layers}
        assert lengths == {out.logits.shape[1]}
        beams = deep_thinker.generate(
            **batch, use_audio_in_video=True, max_new_tokens=3, num_beams=2, do_sample=False
        )
        torch.manual_seed(0)
        sampled = deep_thinker.generate(**batch, use_audio_in_video=True, max_new_tokens=3, do_sample=True)
        assert handle.last_stats[0].layer_avg_kept_video < 0.3
    assert beams.shape == sampled.shape == (2, batch["input_ids"].shape[1] + 3)


def test_generate_with_beams_equals_one_beam_when_width_is_one(deep_thinker, batch) -> None:
    with attach(deep_thinker, _config("fastv-om")):
        greedy = deep_thinker.generate(**batch, use_audio_in_video=True, max_new_tokens=4, do_sample=False)
        beam = deep_thinker.generate(
            **batch, use_audio_in_video=True, max_new_tokens=4, num_beams=1, do_sample=False
        )
    assert torch.equal(greedy, beam)


def test_labels_and_unknown_depth_are_refused(deep_thinker, batch) -> None:
    with attach(deep_thinker, _config("fastv-om")), pytest.raises(RuntimeError, match="labels"):
        deep_thinker(**batch, use_audio_in_video=True, labels=batch["input_ids"])
    with pytest.raises(ValueError, match="no default drop_layers/late_layer for a 8-layer"):
        attach(deep_thinker, CompressionConfig(method="seats", retain=0.25))
    with pytest.raises(ValueError, match="not one of SEATS' budgets"):
        attach(deep_thinker, CompressionConfig(method="fastv", retain=0.3))
