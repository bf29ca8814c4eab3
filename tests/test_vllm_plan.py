"""omnisift.vllm without vLLM: engine arguments, refusals, and block layouts against the core's counts."""

from __future__ import annotations

import pytest
import torch

from omnisift import CompressionConfig, build_layout, resolve_budget
from omnisift.budget import audio_keep_per_group, group_audio_sizes, video_keep_per_grid
from omnisift.models.qwen2_5_omni.adapter import TOKEN_IDS
from omnisift.vllm import ARCHITECTURE, engine_args
from omnisift.vllm.blocks import audio_token_count, build_block
from omnisift.vllm.plan import kept_count, prompt_drops


def test_engine_args_need_no_vllm_and_refuse_encoder_methods():
    args = engine_args(CompressionConfig(method="evs"))
    assert args["hf_overrides"]["architectures"] == [ARCHITECTURE]
    with pytest.raises(ValueError, match="layout-only"):
        engine_args(CompressionConfig(method="omnizip"))


def test_block_at_half_fps_splits_grids_across_chunks():
    # 12 s at 0.5 fps: grids at t = 0, 100, 200 (4 s each), 4 tokens a grid, 300 audio tokens (docs/design.md#layout-rules).
    block = build_block((3, 4, 4), 4.0, 300)
    runs, kinds = [], block.is_video.tolist()
    for kind in kinds:
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    assert [n for _, n in runs][:4] == [4, 50, 1, 50]
    assert int(block.is_video.sum()) == 12 and int((~block.is_video).sum()) == 300


def test_kept_count_matches_the_core_budget():
    block = build_block((16, 8, 8), 1.0, audio_token_count(1600))
    ids = block.input_ids(TOKEN_IDS).unsqueeze(0)
    layout = build_layout(ids, torch.from_numpy(block.positions[0]).unsqueeze(0), None, TOKEN_IDS)
    budget = resolve_budget(layout, 0.7, 0.3)
    expected = int(video_keep_per_grid(layout, budget.video_drop).sum()) + int(
        audio_keep_per_group(layout, budget.audio_drop, group_audio_sizes(layout)).sum()
    )
    assert kept_count(block, 0.7, 0.3, TOKEN_IDS) == expected < len(block)
    video, audio = prompt_drops([block], 0.7, 0.3, 0.25, TOKEN_IDS)
    assert kept_count(block, video, audio, TOKEN_IDS) <= int(0.25 * len(block))


@pytest.mark.parametrize("name", ["seats", "fastv", "fastv-om"])
def test_inner_llm_methods_are_refused_with_the_reason_on_every_road(name):
    """engine_args, a hand-written hf_overrides (vllm serve) and a request naming the method all say why."""
    from omnisift.vllm.settings import ServingSettings, validate_request_kwargs

    reason = f"method '{name}' drops tokens inside the language model.*transformers only.*before the language model runs"
    with pytest.raises(ValueError, match=reason):
        engine_args(CompressionConfig(method=name))

    class HfConfig:
        omnisift = CompressionConfig(method=name).to_dict()

    with pytest.raises(ValueError, match=reason):
        ServingSettings.from_hf_config(HfConfig()).build_method()
    with pytest.raises(ValueError, match="'omnisift_method' is not read.*" + reason):
        validate_request_kwargs({"omnisift_method": name})


def test_a_request_naming_a_servable_method_is_refused_without_an_inner_llm_reason():
    from omnisift.vllm.settings import validate_request_kwargs

    with pytest.raises(ValueError, match="the method and selector are the engine's") as error:
        validate_request_kwargs({"omnisift_method": "evs"})
    assert "inside the language model" not in str(error.value)
