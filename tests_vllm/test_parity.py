"""Greedy output and M-RoPE positions of our vLLM thinker against transformers (+ omnisift.attach)."""

from __future__ import annotations

import cases
import pytest
import torch

from conftest import Engine, request
from omnisift.vllm import engine_args, request_kwargs


@pytest.fixture(scope="module")
def plain(reference_dir):
    engine = Engine(reference_dir / "model", **engine_args(None))
    yield engine
    engine.close()


def test_zero_drop_equals_stock_transformers_tokens_and_positions(plain, references):
    ref = references["zero_drop"]
    assert plain.run([request(cases.CASES["zero_drop"])]) == [ref["stock"]]
    assert ref["attach"] == ref["stock"]
    prefill = plain.positions()[0]
    assert torch.equal(prefill, torch.tensor(ref["positions"]))


@pytest.mark.parametrize("name", ["fps1", "fps05", "two_videos", "video_only", "image_and_video"])
def test_zero_drop_positions_at_other_rates_and_two_videos(plain, references, name):
    plain.llm.reset_prefix_cache()
    plain.positions()
    plain.prompt_ids([request(cases.CASES[name])])
    assert torch.equal(plain.positions()[0], torch.tensor(references[name]["positions"]))


def test_stock_vllm_positions_differ_from_transformers(reference_dir, references):
    """The upstream bug our thinker fixes: stock 0.32 shifts audio-in-video positions (see the README)."""
    engine = Engine(reference_dir / "model")
    try:
        engine.prompt_ids([request(cases.CASES["zero_drop"])])
        stock = engine.positions()[0]
    finally:
        engine.close()
    full = torch.tensor(references["zero_drop"]["positions"])
    assert stock.shape == full.shape
    wrong = (stock != full).any(0)
    assert int(wrong.sum()) > 0
    assert int((stock[:, -1] - full[:, -1]).max()) == 2  # text after the block moves by 2


@pytest.fixture(scope="module")
def compressing(reference_dir):
    config = cases.CASES["drops"].config(reference_dir / "selector.safetensors")
    engine = Engine(reference_dir / "model", **engine_args(config))
    yield engine
    engine.close()


@pytest.mark.parametrize("name", ["drops", "fps1", "fps05", "two_videos", "video_only", "image_and_video"])
def test_drops_equal_transformers_with_attach(compressing, references, name):
    ref = references[name]
    assert compressing.run([request(cases.CASES[name])]) == [ref["attach"]]


def _is_subsequence(part: list, whole: list) -> bool:
    rest = iter(whole)
    return all(any(item == other for other in rest) for item in part)


def test_kept_tokens_keep_transformers_positions(compressing, references):
    """Prefill positions: text exactly get_rope_index's, kept media tokens a subsequence of its media ids."""
    ref = references["drops"]
    compressing.llm.reset_prefix_cache()
    compressing.positions()
    prompt_ids = compressing.prompt_ids([request(cases.CASES["drops"])])[0]
    prefill = compressing.positions()[0]
    full, ids = torch.tensor(ref["positions"]), torch.tensor(ref["input_ids"])
    full_media = (ids == cases.VIDEO_ID) | (ids == cases.AUDIO_ID)
    kept_media = torch.tensor(prompt_ids) == cases.VIDEO_ID  # every kept slot holds the video id
    assert prefill.shape[1] == len(prompt_ids) < full.shape[1]
    assert torch.equal(prefill[:, ~kept_media], full[:, ~full_media])
    kept = prefill[:, kept_media].t().tolist()
    assert 0 < len(kept) < int(full_media.sum())
    assert _is_subsequence(kept, full[:, full_media].t().tolist())


def test_batch_of_different_clips(compressing, references):
    got = compressing.run([request(cases.CASES["drops"]), request(cases.CASES["other_clip"])])
    assert got == [references["drops"]["attach"], references["other_clip"]["attach"]]


def test_batch_mixing_video_with_and_without_audio(compressing, references):
    got = compressing.run([request(cases.CASES["other_clip"]), request(cases.CASES["video_only"])])
    assert got == [references["other_clip"]["attach"], references["video_only"]["attach"]]


def test_prefix_cached_second_question(compressing, references):
    compressing.run([request(cases.CASES["drops"])])
    assert compressing.run([request(cases.CASES["second_question"])]) == [
        references["second_question"]["attach"]
    ]


def test_request_override_of_retain(compressing, references):
    got = compressing.run([request(cases.CASES["retain"], **request_kwargs(retain=0.25))])
    assert got == [references["retain"]["attach"]]


def test_chunked_prefill(reference_dir, references):
    config = cases.CASES["drops"].config(reference_dir / "selector.safetensors")
    engine = Engine(reference_dir / "model", max_num_batched_tokens=96, **engine_args(config))
    try:
        assert engine.run([request(cases.CASES["drops"])]) == [references["drops"]["attach"]]
        assert len(engine.positions()) > 3  # the prompt really went in several chunks
    finally:
        engine.close()


@pytest.mark.parametrize("name", ["evs", "vidcom2", "dycoke", "random", "omnisift-no-temporal"])
def test_other_layout_only_methods(reference_dir, references, name):
    config = cases.CASES[name].config(reference_dir / "selector.safetensors")
    engine = Engine(reference_dir / "model", **engine_args(config))
    try:
        assert engine.run([request(cases.CASES[name])]) == [references[name]["attach"]]
    finally:
        engine.close()


def test_selector_from_checkpoint_compressor_keys(reference_dir, references, tmp_path):
    """Without a selector file, the served checkpoint's thinker.compressor.* keys are the selector."""
    import shutil

    from omnisift import CompressionConfig

    folder = tmp_path / "with-selector"
    shutil.copytree(reference_dir / "model", folder)
    shutil.copy(reference_dir / "selector.safetensors", folder / "compressor.safetensors")
    engine = Engine(
        folder, **engine_args(CompressionConfig(method="omnisift", video_drop=0.7, audio_drop=0.3))
    )
    try:
        assert engine.run([request(cases.CASES["drops"])]) == [references["drops"]["attach"]]
    finally:
        engine.close()


def test_selector_method_without_any_selector_is_refused(reference_dir):
    from omnisift import CompressionConfig

    with pytest.raises(Exception, match="no selector file was given"):
        Engine(reference_dir / "model", **engine_args(CompressionConfig(method="omnisift")))
