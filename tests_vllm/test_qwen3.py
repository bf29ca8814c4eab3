"""Qwen3-Omni-MoE in vLLM: greedy tokens against transformers + omnisift.attach, positions against
transformers' own `get_rope_index`, on the tiny thinker of tiny3.py (head size 32, released key layout)."""

from __future__ import annotations

import json
import shutil

import cases
import pytest
import tiny
import tiny3
import torch

from conftest import Engine
from omnisift import CompressionConfig
from omnisift.vllm import ARCHITECTURES, engine_args, request_kwargs


def request3(case: cases.Case, **mm_kwargs) -> dict:
    clips = [tiny.clip(c.seconds, c.fps, c.seed) for c in case.clips]
    data = {"video": [f for f, _ in clips]}
    if case.audio:
        data["audio"] = [a for _, a in clips]
    return {
        "prompt": cases.chat_text3(len(clips), case.question),
        "multi_modal_data": data,
        "mm_processor_kwargs": {
            "use_audio_in_video": case.audio,
            "fps": case.clips[0].fps,
            "min_pixels": tiny3.MIN_PIXELS,
            "max_pixels": tiny3.MAX_PIXELS,
            **mm_kwargs,
        },
    }


@pytest.fixture(scope="module")
def model3(reference_dir):
    return reference_dir / "qwen3" / "model"


@pytest.fixture(scope="module")
def refs3(references) -> dict:
    return references["qwen3"]


def _config(reference_dir, name: str) -> CompressionConfig:
    return cases.QWEN3_CASES[name].config(reference_dir / "qwen3" / "selector.safetensors")


def test_engine_args_pick_the_qwen3_architecture_from_the_checkpoint(model3):
    args = engine_args(None, model=model3)
    assert args["hf_overrides"]["architectures"] == [ARCHITECTURES["qwen3_omni_moe"][0]]


@pytest.fixture(scope="module")
def plain3(model3):
    engine = Engine(model3, limit_mm_per_prompt={"video": 2, "audio": 2}, **engine_args(None, model=model3))
    yield engine
    engine.close()


def _positions(engine: Engine, case: cases.Case) -> tuple[list[int], torch.Tensor]:
    engine.llm.reset_prefix_cache()
    engine.positions()
    prompt_ids = engine.prompt_ids([request3(case)])[0]
    return prompt_ids, engine.positions()[0]


def test_zero_drop_equals_transformers_tokens_and_get_rope_index(plain3, refs3):
    ref = refs3["zero_drop"]
    assert plain3.run([request3(cases.QWEN3_CASES["zero_drop"])]) == [ref["stock"]]
    assert ref["attach"] == ref["stock"]
    prompt_ids, prefill = _positions(plain3, cases.QWEN3_CASES["zero_drop"])
    media = {tiny3.TOKEN_IDS.video, tiny3.TOKEN_IDS.audio}
    # every media slot holds the video id (the block is one vision item), text and specials are transformers'
    assert [i if i not in media else -1 for i in prompt_ids] == [
        i if i not in media else -1 for i in ref["input_ids"]
    ]
    assert torch.equal(prefill, torch.tensor(ref["positions"]).long())


@pytest.mark.parametrize("name", ["fps1", "fps05", "two_videos", "video_only"])
def test_zero_drop_positions_at_other_rates_and_two_videos(plain3, refs3, name):
    _, prefill = _positions(plain3, cases.QWEN3_CASES[name])
    assert torch.equal(prefill, torch.tensor(refs3[name]["positions"]).long())


def test_fractional_t_ids_are_refused_naming_the_rate(plain3):
    with pytest.raises(Exception, match=r"1\.5 fps.*not a whole number") as error:
        plain3.run([request3(cases.QWEN3_FRACTIONAL)])
    assert "0.5" in str(error.value)


@pytest.fixture(scope="module")
def compressing3(reference_dir, model3):
    args = engine_args(_config(reference_dir, "drops"), model=model3)
    engine = Engine(model3, limit_mm_per_prompt={"video": 2, "audio": 2}, **args)
    yield engine
    engine.close()


@pytest.mark.parametrize("name", ["drops", "fps1", "fps05", "two_videos", "video_only"])
def test_drops_equal_transformers_with_attach(compressing3, refs3, name):
    assert compressing3.run([request3(cases.QWEN3_CASES[name])]) == [refs3[name]["attach"]]


def _is_subsequence(part: list, whole: list) -> bool:
    rest = iter(whole)
    return all(any(item == other for other in rest) for item in part)


def test_kept_tokens_keep_get_rope_index_positions(compressing3, refs3):
    ref = refs3["drops"]
    prompt_ids, prefill = _positions(compressing3, cases.QWEN3_CASES["drops"])
    full, ids = torch.tensor(ref["positions"]).long(), torch.tensor(ref["input_ids"])
    full_media = (ids == tiny3.TOKEN_IDS.video) | (ids == tiny3.TOKEN_IDS.audio)
    kept_media = torch.tensor(prompt_ids) == tiny3.TOKEN_IDS.video
    assert prefill.shape[1] == len(prompt_ids) < full.shape[1]
    assert torch.equal(prefill[:, ~kept_media], full[:, ~full_media])
    kept = prefill[:, kept_media].t().tolist()
    assert 0 < len(kept) < int(full_media.sum())
    assert _is_subsequence(kept, full[:, full_media].t().tolist())


def test_batch_of_different_clips(compressing3, refs3):
    got = compressing3.run([request3(cases.QWEN3_CASES["drops"]), request3(cases.QWEN3_CASES["other_clip"])])
    assert got == [refs3["drops"]["attach"], refs3["other_clip"]["attach"]]


def test_request_retain(compressing3, refs3):
    got = compressing3.run([request3(cases.QWEN3_CASES["retain"], **request_kwargs(retain=0.25))])
    assert got == [refs3["retain"]["attach"]]


def test_deepstack_rows_follow_the_keep_mask(reference_dir, model3, refs3):
    """Dropping video rows without filtering DeepStack (features of the wrong tokens) changes the output:
    the parity above would not hold by accident."""
    from vllm.model_executor.models import qwen3_omni_moe_thinker  # noqa: F401  (the stock class is loaded)

    from omnisift.vllm import qwen3

    original = qwen3.OmniSIFTQwen3OmniMoeThinker._select_video

    def misplaced(self, *args):
        kept = original(self, *args)
        width = self.config.text_config.hidden_size
        shifted = kept.clone()
        shifted[:, width:-7] = kept[:, width:-7].roll(1, dims=0)
        return shifted

    qwen3.OmniSIFTQwen3OmniMoeThinker._select_video = misplaced
    try:
        args = engine_args(_config(reference_dir, "drops"), model=model3)
        engine = Engine(model3, limit_mm_per_prompt={"video": 1, "audio": 1}, **args)
        try:
            got = engine.run([request3(cases.QWEN3_CASES["drops"])])
        finally:
            engine.close()
    finally:
        qwen3.OmniSIFTQwen3OmniMoeThinker._select_video = original
    assert got != [refs3["drops"]["attach"]]


def test_chunked_prefill(reference_dir, model3, refs3):
    args = engine_args(_config(reference_dir, "drops"), model=model3)
    engine = Engine(model3, max_num_batched_tokens=64, limit_mm_per_prompt={"video": 1, "audio": 1}, **args)
    try:
        assert engine.run([request3(cases.QWEN3_CASES["drops"])]) == [refs3["drops"]["attach"]]
        assert len(engine.positions()) > 3
    finally:
        engine.close()


@pytest.mark.parametrize("name", ["evs", "vidcom2", "dycoke", "random", "omnisift-no-temporal"])
def test_other_layout_only_methods(reference_dir, model3, refs3, name):
    args = engine_args(_config(reference_dir, name), model=model3)
    engine = Engine(model3, limit_mm_per_prompt={"video": 1, "audio": 1}, **args)
    try:
        assert engine.run([request3(cases.QWEN3_CASES[name])]) == [refs3[name]["attach"]]
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda c: c["thinker_config"]["text_config"]["rope_parameters"].pop("mrope_interleaved"),
            "mrope_interleaved",
        ),
        (lambda c: c["thinker_config"]["vision_config"].update(image_size=256), "image_size"),
        (lambda c: c["thinker_config"]["text_config"].update(head_dim=16), "head_dim"),
    ],
)
def test_config_keys_that_change_vllm_results_are_refused(model3, tmp_path, edit, named):
    folder = tmp_path / "edited"
    shutil.copytree(model3, folder)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=named):
        engine_args(None, model=folder)
