"""omnisift.inputs: the one road from media and a prompt to model inputs, per model family."""

from __future__ import annotations

import math

import pytest
import torch

from omnisift import load_model, media
from omnisift.inputs import Protocol, effective_protocol, encode, family_of, load_video, prepare_inputs
from omnisift.media import SamplingConfig
from omnisift.models import ADAPTERS, adapter_for_tiny
from omnisift.testing.clips import make_clip, write_clip


def published_frame_size(height, width, frames, factor, min_pixels, max_pixels):
    """The readers' resize (qwen-vl-utils / qwen-omni-utils `fetch_video` with `image_patch_size` = factor / 2),
    written from their formulas: a per-frame ceiling of 768 merged cells, a whole-video budget of
    0.9 * 128000 cells shared by the frames (in pairs), never below 1.05 * min_pixels; then smart_resize
    rounds each side to the factor and scales into [min_pixels, ceiling] keeping the aspect."""
    cell = factor * factor
    ceiling = min(max_pixels, max(min(768 * cell, 0.9 * 128000 * cell / frames * 2), int(1.05 * min_pixels)))
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > ceiling:
        scale = math.sqrt(height * width / ceiling)
        h = max(factor, math.floor(height / scale / factor) * factor)
        w = max(factor, math.floor(width / scale / factor) * factor)
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * scale / factor) * factor, math.ceil(width * scale / factor) * factor
    return h, w


SIZES = [(1080, 1920), (720, 1280), (360, 640), (480, 480), (112, 112), (1920, 1080), (250, 333)]


@pytest.mark.parametrize("factor", [28, 32])
@pytest.mark.parametrize("frames", [4, 256, 728, 768])
@pytest.mark.parametrize("max_cells", [128, 144, 256, 320])
def test_frame_size_follows_the_published_formula(factor, frames, max_cells) -> None:
    for height, width in SIZES:
        want = published_frame_size(height, width, frames, factor, 4 * 28 * 28, max_cells * 28 * 28)
        got = media.frame_size(
            height, width, frames, min_pixels=4 * 28 * 28, max_pixels=max_cells * 28 * 28, factor=factor
        )
        assert got == want and got[0] % factor == 0 and got[1] % factor == 0


def test_frame_size_by_hand() -> None:
    # 1080p at the paper's cap: scale sqrt(1080*1920 / (256*28*28)) = 3.214, sides floored to 28s
    assert media.frame_size(1080, 1920, 256, max_pixels=256 * 28 * 28) == (336, 588)
    # image_patch_size 16: cap 256*32*32, scale 2.8125 -> 384 x 682.7 -> (384, 672)
    assert media.frame_size(1080, 1920, 256, max_pixels=256 * 32 * 32, factor=32) == (384, 672)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.family)
def test_each_family_fills_its_frame_factor_and_audio_window(adapter) -> None:
    protocol = effective_protocol(Protocol(), adapter.tiny_names[0])
    assert protocol.sampling.frame_factor == adapter.frame_factor
    assert protocol.sampling.audio_window_s == adapter.audio_window_s
    assert (protocol.sampling.min_pixels, protocol.sampling.max_pixels) == adapter.tiny_pixel_bounds
    own = effective_protocol(Protocol(sampling=SamplingConfig(frame_factor=32)), adapter)
    assert own.sampling.frame_factor == 32  # a protocol's own setting wins


def test_qwen3_omni_defaults_to_the_model_card_reader_and_takes_patch_16(tmp_path) -> None:
    qwen3 = adapter_for_tiny("tiny-qwen3-omni")
    assert qwen3.frame_factor == 28  # process_mm_info's default image_patch_size=14
    assert qwen3.audio_window_s is None  # its processor does not cut audio
    clip = write_clip(tmp_path / "wide.mkv", 2.0, fps=10.0, size=(180, 320), audio_layouts=())
    bounds = dict(min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28)
    for factor in (28, 32):
        protocol = Protocol(use_audio=False, sampling=SamplingConfig(frame_factor=factor, **bounds))
        frames = load_video(clip, effective_protocol(protocol, qwen3)).frames
        want = published_frame_size(180, 320, frames.shape[0], factor, **bounds)
        assert tuple(frames.shape[2:]) == want


def test_family_of_names_folders_models_and_loaded_models(tmp_path) -> None:
    loaded = load_model("tiny-qwen3-omni")
    qwen3 = adapter_for_tiny("tiny-qwen3-omni")
    assert family_of("tiny-qwen3-omni") is qwen3
    assert family_of(loaded) is qwen3 and family_of(loaded.thinker) is qwen3
    assert family_of(tmp_path) is None  # no config.json yet: nothing to read


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen3-omni"])
def test_prepare_inputs_batches_files_of_different_rates_like_single_calls(name, tmp_path) -> None:
    loaded = load_model(name)
    clips = [make_clip(tmp_path / "a.mp4", 3.0, fps=4.0), make_clip(tmp_path / "b.mp4", 2.0, fps=4.0)]
    batch = prepare_inputs(loaded, clips, ["One?", "Two?"])
    protocol = effective_protocol(Protocol(), loaded, loaded.processor)
    alone = encode(loaded.processor, load_video(clips[1], protocol), "Two?", protocol)
    width = alone["input_ids"].shape[1]
    assert batch["use_audio_in_video"] is True
    assert torch.equal(batch["input_ids"][1, -width:], alone["input_ids"][0])
    assert int(batch["attention_mask"][1].sum()) == width  # left padded
    with torch.no_grad():
        logits = loaded.thinker(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape


def test_encode_refuses_mixed_rates_and_mismatched_prompts(tmp_path) -> None:
    loaded = load_model("tiny")
    protocol = effective_protocol(Protocol(), loaded, loaded.processor)
    a = load_video(make_clip(tmp_path / "a.mp4", 3.0, fps=4.0), protocol)
    b = load_video(make_clip(tmp_path / "b.mp4", 5.0, fps=5.0), protocol)
    with pytest.raises(ValueError, match="one frame rate"):
        encode(loaded.processor, [a, b], "Hi", protocol)
    with pytest.raises(ValueError, match="1 videos but 2 prompts"):
        encode(loaded.processor, [a], ["x", "y"], protocol)
