"""Qwen3-Omni-MoE attach paths (issue 23): calls that compress nothing run like stock at a non-zero drop,
`output_router_logits=True` gives the load-balancing loss of the rows the LLM really saw, and a video with
its audio interleaved but run without use_audio_in_video=True is refused instead of misread."""

from __future__ import annotations

import pytest
import torch
from transformers.models.qwen3_omni_moe import modeling_qwen3_omni_moe as stock_modeling

from models.test_qwen3_omni import HIDDEN, model_inputs
from omnisift import CompressionConfig, VisionGuidedAudioSelector, attach
from omnisift.models.qwen3_omni_moe import fixtures as tiny
from omnisift.models.qwen3_omni_moe import synthetic as S

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

AUDIO_AND_IMAGE = [[S.text(2), S.audio(1.5), S.text(2), S.image(), S.text(3)]] * 2
"""Like transformers' own tests: a separate audio input and an image, nothing any method drops."""
VIDEO_WITH_AUDIO = [[S.text(3), S.av_clip(3.0), S.text(2)], [S.text(1), S.av_clip(2.0, grid_h=1), S.text(4)]]


@pytest.fixture(scope="module")
def thinker():
    return tiny.tiny_thinker(seed=0)


@pytest.fixture(scope="module")
def config():
    return CompressionConfig(
        video_drop=0.5, audio_drop=0.5, selector=VisionGuidedAudioSelector(HIDDEN).eval()
    )


def _paths(thinker, inputs):
    """The paths main refused at a non-zero drop though they compress nothing (their outputs)."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    thinker.model.rope_deltas = None  # stock keeps it between calls and reads it without input_ids
    with torch.no_grad():
        embeds = thinker.get_input_embeddings()(ids)
        out = {"inputs_embeds": thinker(**media, inputs_embeds=embeds, attention_mask=mask).logits}
        text_positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out["text position_ids"] = thinker(**inputs, position_ids=text_positions).logits
        out["static cache"] = thinker.generate(**inputs, max_new_tokens=3, cache_implementation="static")
        out["router logits"] = thinker(**inputs, output_router_logits=True).aux_loss
    return out


def test_paths_that_drop_nothing_run_like_stock_at_a_non_zero_drop(thinker, config) -> None:
    inputs = model_inputs(AUDIO_AND_IMAGE, seed=1)
    stock = _paths(thinker, inputs)
    with attach(thinker, config) as handle:
        got = _paths(thinker, inputs)
    assert not any(call.compressed for call in handle.history)
    for name, value in stock.items():
        assert torch.equal(got[name], value), name


def test_router_aux_loss_is_computed_on_the_kept_rows(thinker, config) -> None:
    inputs = {**model_inputs(VIDEO_WITH_AUDIO, seed=2), "use_audio_in_video": True}
    with torch.no_grad():
        stock = thinker(**inputs, output_router_logits=True)
        with attach(thinker, config) as handle:
            got = thinker(**inputs, output_router_logits=True)
    kept = handle.last_source_index >= 0
    rows = kept.sum(1)
    assert bool((rows < inputs["attention_mask"].sum(1)).all()), "nothing was dropped"
    assert got.router_logits[0].shape[0] == kept.numel() < stock.router_logits[0].shape[0]
    expected = stock_modeling.load_balancing_loss_func(
        got.router_logits, thinker.num_experts, thinker.num_experts_per_tok, kept.long()
    )
    assert torch.equal(got.aux_loss, expected)
    assert not torch.equal(got.aux_loss, stock.aux_loss)


def test_router_aux_loss_from_the_config_and_with_zero_drop(thinker) -> None:
    inputs = {**model_inputs(VIDEO_WITH_AUDIO, seed=2), "use_audio_in_video": True}
    with torch.no_grad():
        stock = thinker(**inputs, output_router_logits=True).aux_loss
        with attach(thinker, CompressionConfig(video_drop=0.0, audio_drop=0.0)):
            assert torch.equal(thinker(**inputs, output_router_logits=True).aux_loss, stock)
        with attach(thinker, CompressionConfig(video_drop=0.5, audio_drop=0.0)):
            thinker.config.text_config.output_router_logits = True
            try:
                from_config = thinker(**inputs).aux_loss
            finally:
                thinker.config.text_config.output_router_logits = False
    assert from_config is not None and torch.isfinite(from_config)


def test_interleaved_video_audio_without_use_audio_in_video_is_refused(thinker, config) -> None:
    inputs = model_inputs(VIDEO_WITH_AUDIO, seed=2)
    with torch.no_grad():
        stock = thinker(**inputs).logits
        with attach(thinker, config), pytest.raises(RuntimeError, match="use_audio_in_video=None"):
            thinker(**inputs)
        with attach(thinker, config), pytest.raises(RuntimeError, match="use_audio_in_video=False"):
            thinker(**inputs, use_audio_in_video=False)
        with attach(thinker, config) as handle:
            thinker(**inputs, use_audio_in_video=True)
            assert handle.last_stats[0].video_after < handle.last_stats[0].video_before
        with attach(thinker, CompressionConfig(video_drop=0.0, audio_drop=0.0)):
            assert torch.equal(thinker(**inputs).logits, stock)  # nothing dropped: the stock result


def test_a_media_block_without_its_features_generates_like_stock(thinker, config) -> None:
    """generate passes an empty `mm_encoder_outputs` dict on every prefill; a prompt holding a whole
    video-with-audio block of placeholders but no features must generate like stock, not be refused."""
    inputs = model_inputs(VIDEO_WITH_AUDIO, seed=2)
    ids = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
    for audio_in_video in ({}, {"use_audio_in_video": True}):

        def runs(audio_in_video=audio_in_video):
            thinker.model.rope_deltas = None
            with torch.no_grad():
                return thinker.generate(**ids, **audio_in_video, max_new_tokens=3, do_sample=False)

        stock = runs()
        with attach(thinker, config) as handle:
            got = runs()
        assert not any(call.compressed for call in handle.history)
        assert torch.equal(got, stock)
