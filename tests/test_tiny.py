"""Tests of the shared tiny fixtures: config, processor, clips, interleaved layout and positions."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch

from omnisift.inputs import conversation
from omnisift.media import load
from omnisift.models.qwen2_5_omni import fixtures as tiny
from omnisift.testing.clips import make_clip

PROMPT = "What happens in the video?"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return {
        "3s": make_clip(root / "c3.mp4", 3.0),
        "2s": make_clip(root / "c2.mp4", 2.0, tone_hz=330.0),
        "5s": make_clip(root / "c5.mp4", 5.0, fps=4.0),
    }


def _rope_index(thinker, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The stock positions and rope deltas of processor inputs with the audio interleaved in the video."""
    return thinker.model.get_rope_index(
        inputs["input_ids"],
        video_grid_thw=inputs["video_grid_thw"],
        attention_mask=inputs["attention_mask"],
        use_audio_in_video=True,
        audio_seqlens=inputs["feature_attention_mask"].sum(-1),
        second_per_grids=inputs["video_second_per_grid"],
    )


def _media_span(ids: torch.Tensor) -> tuple[int, int]:
    """Index of <vision_bos> and of <vision_eos> in one row of input ids."""
    row = ids.tolist()
    return row.index(tiny.VISION_BOS_ID), row.index(tiny.VISION_EOS_ID)


def _runs(tokens: list[int]) -> list[tuple[int, int]]:
    """Run-length encoding: [(token, count), ...]."""
    out: list[tuple[int, int]] = []
    for t in tokens:
        if out and out[-1][0] == t:
            out[-1] = (t, out[-1][1] + 1)
        else:
            out.append((t, 1))
    return out


def _expected_media_runs(grid_thw, second_per_grid: float, n_audio: int) -> list[tuple[int, int]]:
    """docs/design.md#layout-rules layout: per 2-s chunk (50 t ids) the chunk's video grids, then the chunk's audio tokens."""
    t, h, w = (int(x) for x in grid_thw)
    per_grid = h * w // 4
    grid_t = [math.floor(g * np.float32(second_per_grid) * 25) for g in range(t)]
    n_chunks = max(grid_t[-1] // 50, (n_audio - 1) // 50) + 1
    runs: list[tuple[int, int]] = []
    for j in range(n_chunks):
        v = sum(per_grid for gt in grid_t if 50 * j <= gt < 50 * (j + 1))
        a = len([i for i in range(n_audio) if 50 * j <= i < 50 * (j + 1)])
        for token, count in ((tiny.VIDEO_ID, v), (tiny.AUDIO_ID, a)):
            if count and runs and runs[-1][0] == token:  # an empty chunk side joins two runs
                runs[-1] = (token, runs[-1][1] + count)
            elif count:
                runs.append((token, count))
    return runs


def _n_audio_tokens(feature_len: int) -> int:
    return ((feature_len - 1) // 2 + 1 - 2) // 2 + 1


def test_config_and_text_forward():
    for hidden in (32, 48, 64):
        cfg = tiny.tiny_thinker_config(hidden_size=hidden)
        text = cfg.text_config
        head_dim = text.hidden_size // text.num_attention_heads
        assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
        assert cfg.vision_start_token_id == tiny.VISION_BOS_ID
        assert cfg.audio_config.output_dim == hidden and cfg.vision_config.out_hidden_size == hidden
        model = tiny.tiny_thinker(hidden_size=hidden, num_layers=1)
        ids = torch.tensor([[tiny.IM_START_ID, 100, 101, 102, tiny.IM_END_ID]])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        assert logits.shape == (1, 5, 151936)
        assert torch.isfinite(logits).all()
    with pytest.raises(ValueError):
        tiny.tiny_thinker_config(hidden_size=36)


def test_thinker_is_deterministic_and_eval():
    a, b, c = tiny.tiny_thinker(seed=0), tiny.tiny_thinker(seed=0), tiny.tiny_thinker(seed=1)
    assert not a.training and a.dtype == torch.float32
    assert a.config._attn_implementation == "sdpa"
    wa, wb, wc = (m.model.language_model.layers[0].self_attn.q_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    eager = tiny.tiny_thinker(seed=0, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    ids = torch.tensor([[tiny.PAD_ID, tiny.IM_START_ID, 70, 71, 72, tiny.IM_END_ID]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        torch.testing.assert_close(
            a(input_ids=ids, attention_mask=mask).logits[:, 1:],
            eager(input_ids=ids, attention_mask=mask).logits[:, 1:],
        )


def test_tokenizer_real_ids_and_roundtrip(processor):
    tok = processor.tokenizer
    for token, token_id in tiny.SPECIAL_TOKENS.items():
        assert tok.convert_tokens_to_ids(token) == token_id
        assert tok(token, add_special_tokens=False)["input_ids"] == [token_id]
    assert (processor.video_token_id, processor.audio_token_id, processor.image_token_id) == (
        151656,
        151646,
        151655,
    )
    assert tok.pad_token_id == 151643
    text = "Ünïcode, digits 123 and words: the answer is (B). 你好"
    ids = tok(f"<|im_start|>{text}<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids[0] == tiny.IM_START_ID and ids[-1] == tiny.IM_END_ID
    assert tok.decode(ids[1:-1]) == text
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_chat_template(processor):
    conv = conversation("Hi")
    text = processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n" + tiny.DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n")
    assert text.endswith(
        "<|im_start|>user\n<|vision_bos|><|VIDEO|><|vision_eos|>Hi<|im_end|>\n<|im_start|>assistant\n"
    )
    own = processor.apply_chat_template(conversation("Hi", "S"), tokenize=False)
    assert own.startswith("<|im_start|>system\nS<|im_end|>\n") and "assistant" not in own
    mixed = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": "x.png"},
                {"type": "audio", "audio": "x.wav"},
                {"type": "text", "text": "T"},
            ],
        }
    ]
    rendered = processor.apply_chat_template(mixed, tokenize=False)
    assert "<|vision_bos|><|IMAGE|><|vision_eos|><|audio_bos|><|AUDIO|><|audio_eos|>T<|im_end|>" in rendered


def test_make_clip_readable_with_audio(clips):
    with av.open(str(clips["3s"])) as container:
        assert container.streams.video and container.streams.audio
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (112, 112, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 5  # frames really move
    clip = load(clips["3s"], min_pixels=tiny.TINY_MIN_PIXELS, max_pixels=tiny.TINY_MAX_PIXELS)
    assert clip.frames.shape == (6, 3, 112, 112) and clip.indices.tolist() == [0, 2, 4, 7, 9, 11]
    assert clip.fps == pytest.approx(5 / (11 / 4))  # the rate of the frames taken, not the 2 fps asked
    assert clip.audio is not None and clip.audio.size == 48000
    assert 0.05 < float(np.abs(clip.audio).max()) < 1.0


def test_interleaved_layout_and_positions(processor, thinker, clips):
    inputs = tiny.processor_inputs(processor, clips["3s"], PROMPT)
    ids = inputs["input_ids"][0]
    assert inputs["video_second_per_grid"].tolist() == [pytest.approx(1.1)]  # frames 0, 4, 9 of 4 fps
    assert inputs["video_grid_thw"].tolist() == [[3, 8, 8]]
    n_audio = _n_audio_tokens(int(inputs["feature_attention_mask"][0].sum()))
    assert n_audio == 75

    bos, eos = _media_span(ids)
    assert ids[bos + 1] == tiny.AUDIO_BOS_ID and ids[eos - 1] == tiny.AUDIO_EOS_ID
    media = ids[bos + 2 : eos - 1].tolist()
    assert _runs(media) == [
        (tiny.VIDEO_ID, 32),
        (tiny.AUDIO_ID, 50),
        (tiny.VIDEO_ID, 16),
        (tiny.AUDIO_ID, 25),
    ]
    assert _runs(media) == _expected_media_runs(inputs["video_grid_thw"][0], 1.1, n_audio)

    pos, deltas = _rope_index(thinker, inputs)
    t = pos[0, 0]
    assert t[bos] == t[bos + 1] and torch.equal(pos[:, 0, bos], pos[:, 0, bos + 1])
    start = int(t[bos]) + 1
    audio_idx = torch.nonzero(ids == tiny.AUDIO_ID).flatten()
    rel_audio = t[audio_idx] - start
    assert rel_audio.tolist() == list(range(n_audio))
    # audio t ids in chunk j (the j-th audio run) lie in [50j, 50j + 50)
    run_start = 0
    for j, (_token, count) in enumerate(r for r in _runs(media) if r[0] == tiny.AUDIO_ID):
        chunk = rel_audio[run_start : run_start + count]
        assert chunk.min() >= 50 * j and chunk.max() < 50 * j + 50
        run_start += count
    video_idx = torch.nonzero(ids == tiny.VIDEO_ID).flatten()
    rel_video = (t[video_idx] - start).view(3, 16)
    assert rel_video[:, 0].tolist() == [0, 27, 55] and (rel_video == rel_video[:, :1]).all()
    # text after the media restarts at max position + 1; rope delta = max + 1 - length
    assert t[eos + 1] == pos[:, 0, : eos + 1].max() + 1
    assert int(deltas[0]) == int(pos[:, 0].max()) + 1 - ids.numel()

    with torch.no_grad():
        logits = thinker(**inputs, use_audio_in_video=True).logits
    assert logits.shape == (1, ids.numel(), 151936) and torch.isfinite(logits).all()


def test_batch_left_padding_matches_single(processor, thinker, clips):
    batch = tiny.processor_inputs(processor, [clips["3s"], clips["2s"]], [PROMPT, "Short?"])
    single = tiny.processor_inputs(processor, clips["2s"], "Short?")
    mask = batch["attention_mask"]
    assert mask[0].all() and not mask[1].all()
    n_pad = int((mask[1] == 0).sum())
    assert (mask[1, :n_pad] == 0).all() and (batch["input_ids"][1, :n_pad] == tiny.PAD_ID).all()
    assert torch.equal(batch["input_ids"][1, n_pad:], single["input_ids"][0])
    assert batch["input_features"].shape[0] == 2 and batch["video_grid_thw"].shape[0] == 2
    with torch.no_grad():
        lb = thinker(**batch, use_audio_in_video=True).logits
        ls = thinker(**single, use_audio_in_video=True).logits
    torch.testing.assert_close(lb[1, n_pad:], ls[0], atol=1e-4, rtol=1e-4)

    forced = tiny.processor_inputs(processor, [clips["3s"], clips["2s"]], [PROMPT, "Short?"], per_sample=True)
    for key in ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw", "input_features"):
        assert torch.equal(forced[key], batch[key]), key
    assert torch.equal(forced["video_second_per_grid"], batch["video_second_per_grid"])


def test_mixed_sampling_rates_use_real_fps(processor, thinker, clips):
    """A frame cap lowers one clip's rate: its grids must span the real time, audio aligned to it."""
    bounds = {"min_pixels": tiny.TINY_MIN_PIXELS, "max_pixels": tiny.TINY_MAX_PIXELS}
    capped = load(clips["5s"], max_frames=4, **bounds)  # frames 0, 6, 13, 19 of 20 at 4 fps
    assert capped.fps == pytest.approx(3 / (19 / 4))
    normal = load(clips["2s"], **bounds)  # frames 0, 2, 5, 7 of 8
    inputs = tiny.processor_inputs(processor, [capped, normal], PROMPT)
    assert inputs["video_second_per_grid"].tolist() == pytest.approx([2 * 19 / 12, 2 * 7 / 12])
    ids = inputs["input_ids"][0]
    bos, eos = _media_span(ids)
    n_audio = _n_audio_tokens(int(inputs["feature_attention_mask"][0].sum()))
    assert n_audio == 125
    assert _runs(ids[bos + 2 : eos - 1].tolist()) == _expected_media_runs(
        inputs["video_grid_thw"][0], 2 * 19 / 12, n_audio
    )
    pos, _ = _rope_index(thinker, inputs)
    start = int(pos[0, 0, bos]) + 1
    video_t = pos[0, 0][ids == tiny.VIDEO_ID] - start
    assert sorted(set(video_t.tolist())) == [0, 79]  # the second pair starts at frame 13: 3.25 s


def test_thinker_generate(processor, thinker, clips):
    batch = tiny.processor_inputs(processor, [clips["3s"], clips["2s"]], [PROMPT, "Short?"])
    out = thinker.generate(**batch, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)
    assert torch.equal(out[:, : batch["input_ids"].shape[1]], batch["input_ids"])


def test_full_model_generate_modes(processor, clips):
    inputs = tiny.processor_inputs(processor, clips["2s"], "Short?")
    model = tiny.tiny_omni_model()
    assert not model.has_talker
    out = model.thinker.generate(**inputs, use_audio_in_video=True, max_new_tokens=2)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 2
    with pytest.raises(AttributeError):  # 5.23: full-model generate needs a talker even for text
        model.generate(**inputs, use_audio_in_video=True, generation_mode="text", thinker_max_new_tokens=2)

    talking = tiny.tiny_omni_model(enable_audio_output=True)
    text = talking.generate(
        **inputs, use_audio_in_video=True, generation_mode="text", thinker_max_new_tokens=2
    )
    assert text.shape[1] == inputs["input_ids"].shape[1] + 2
    with pytest.raises(ValueError, match="return_audio"):  # 5.23 removed `return_audio`
        talking.generate(**inputs, use_audio_in_video=True, return_audio=False, thinker_max_new_tokens=2)


def test_video_only_inputs(processor, thinker, clips):
    inputs = tiny.processor_inputs(processor, clips["2s"], PROMPT, use_audio=False)
    ids = inputs["input_ids"][0]
    assert "input_features" not in inputs and not (ids == tiny.AUDIO_ID).any()
    bos, eos = _media_span(ids)
    assert _runs(ids[bos + 1 : eos].tolist()) == [(tiny.VIDEO_ID, 32)]
    with torch.no_grad():
        logits = thinker(**inputs).logits
    assert torch.isfinite(logits).all()
