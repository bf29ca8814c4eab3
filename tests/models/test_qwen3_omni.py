"""Qwen3-Omni-MoE beyond the family matrix (tests/models/test_family_matrix.py runs every registered family
through layout, selection parity, attach, decode and DeepStack filtering on generated clips): the synthetic
layout builder against the stock `get_rope_index` and processor, selection parity on random layouts, the
full model, loading, evaluation and training.

Inputs here are synthetic token layouts (`models.qwen3_omni_moe.synthetic`) with random pixels and mel
features, run through the stock thinker, so the encoders, `get_rope_index` and DeepStack are the model's.
"""

from __future__ import annotations

import random

import pytest
import torch

from omnisift import CompressionConfig, VisionGuidedAudioSelector, attach, keep_mask
from omnisift.layout import build_layout
from omnisift.loading import load_model
from omnisift.models import find_adapter
from omnisift.models.qwen3_omni_moe import TOKEN_IDS, Qwen3OmniMoeAdapter
from omnisift.models.qwen3_omni_moe import fixtures as tiny
from omnisift.models.qwen3_omni_moe import synthetic as S
from omnisift.testing.hooks import language_model_inputs
from omnisift.testing.reference import literal_keep_mask

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HIDDEN = 32
PATCH_DIM = 3 * 2 * 16 * 16


@pytest.fixture(scope="module")
def thinker():
    return tiny.tiny_thinker(seed=0)


@pytest.fixture(scope="module")
def selector(spread_selector):
    return spread_selector(HIDDEN)


def model_inputs(samples: list[list[S.Segment]], seed: int = 0) -> dict:
    """Processor-like thinker inputs for synthetic layouts: real token order, random pixels and mels."""
    b = S.build_batch(samples, HIDDEN, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    out = {"input_ids": b.input_ids, "attention_mask": b.attention_mask}
    if b.video_grid_thw is not None:
        patches = int(b.video_grid_thw.prod(-1).sum())
        out["pixel_values_videos"] = torch.randn(patches, PATCH_DIM, generator=gen)
        out["video_grid_thw"] = b.video_grid_thw
        out["video_second_per_grid"] = b.video_second_per_grid
    if b.image_grid_thw is not None:
        out["pixel_values"] = torch.randn(int(b.image_grid_thw.prod(-1).sum()), PATCH_DIM, generator=gen)
        out["image_grid_thw"] = b.image_grid_thw
    if b.audio_seqlens is not None:
        frames = b.audio_seqlens
        width = int(frames.max())
        out["input_features"] = torch.randn(len(frames), 128, width, generator=gen)
        out["feature_attention_mask"] = (torch.arange(width) < frames.unsqueeze(1)).long()
    return out


PADDED = [
    [S.text(4), S.av_clip(3.0, fps=2.0), S.text(3)],
    [S.text(2), S.av_clip(6.0, grid_h=1, fps=1.0), S.text(5)],
    [S.text(1), S.av_clip(9.0, grid_w=1, fps=0.5), S.text(2)],
]

LAYOUTS = {
    "2fps": [[S.text(3), S.av_clip(4.0, fps=2.0), S.text(2)]],
    "1fps": [[S.text(3), S.av_clip(5.0, fps=1.0), S.text(2)]],
    "below_1fps": [[S.text(3), S.av_clip(13.0, fps=0.4), S.text(2)]],
    "two_videos": [[S.text(2), S.av_clip(3.0), S.text(2), S.av_clip(2.5, grid_h=1), S.text(2)]],
    "image_before_video": [[S.text(2), S.image(), S.text(2), S.av_clip(3.0), S.text(2)]],
    "left_padded": PADDED,
}


# ---------------------------------------------------------------------------------------------------
# Literal per-sample reference of the rules (docs/design.md#selection-rules on Qwen3-Omni layouts)
# ---------------------------------------------------------------------------------------------------


def reference_groups(ids: list[int], ts: list[float]) -> list[tuple[list[list[int]], list[int]]]:
    """Per video: for each group its grids (token indices in order) and its audio token indices."""
    out = []
    media = [tok in (TOKEN_IDS.video, TOKEN_IDS.audio) for tok in ids]
    i = 0
    while i < len(ids):
        if not media[i]:
            i += 1
            continue
        j = i
        while j < len(ids) and media[j]:
            j += 1
        run = range(i, j)
        i = j
        grid_ts = sorted({ts[k] for k in run if ids[k] == TOKEN_IDS.video})
        if not grid_ts:
            continue
        grids = [[k for k in run if ids[k] == TOKEN_IDS.video and ts[k] == t] for t in grid_ts]
        starts = grid_ts[::2]
        for g, t0 in enumerate(starts):
            t1 = starts[g + 1] if g + 1 < len(starts) else float("inf")
            audio = [k for k in run if ids[k] == TOKEN_IDS.audio and t0 <= ts[k] < t1]
            out.append((grids[2 * g : 2 * g + 2], audio))
    return out


def random_sample(rng: random.Random) -> list[S.Segment]:
    segs = [S.text(rng.randint(1, 4))]
    for _ in range(rng.randint(1, 2)):
        kind = rng.choice(["av", "av", "av", "image", "audio", "video"])
        h, w = rng.randint(1, 3), rng.randint(1, 3)
        fps = rng.choice([2.0, 1.0, 0.5, 0.4, 2.0 / 3])
        if kind == "av":
            segs.append(S.av_clip(rng.uniform(0.6, 9.0), h, w, fps=fps))
        elif kind == "video":
            segs.append(S.video(rng.uniform(1.0, 5.0), h, w, fps=fps))
        elif kind == "image":
            segs.append(S.image(h, w))
        else:
            segs.append(S.audio(rng.uniform(0.5, 3.0)))
        segs.append(S.text(rng.randint(1, 3)))
    return segs


# ---------------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_matches_get_rope_index(thinker, name) -> None:
    samples = LAYOUTS[name]
    batch = S.build_batch(samples, HIDDEN)
    positions, _ = thinker.model.get_rope_index(
        batch.input_ids, use_audio_in_video=True, **batch.rope_kwargs()
    )
    valid = batch.attention_mask.bool()
    assert torch.equal(positions[:, valid], batch.position_ids[:, valid])
    assert positions.dtype == torch.float32
    layout = build_layout(batch.input_ids, positions[0], batch.attention_mask, TOKEN_IDS)
    n = batch.input_ids.shape[1]
    got = []
    for q in range(layout.num_groups):
        grids = torch.nonzero(layout.grid_group == q).squeeze(1).tolist()
        index, present = layout.grid_index_matrix()
        members = [(index[g][present[g]] % n).tolist() for g in grids]
        audio = (layout.audio_flat[layout.audio_group == q] % n).tolist()
        got.append((int(layout.group_batch[q]), members, audio))
    want = []
    for b in range(len(samples)):
        ids, ts = batch.input_ids[b].tolist(), positions[0, b].tolist()
        rows = [i for i in range(n) if valid[b, i]]
        for grids, audio in reference_groups([ids[i] if i in rows else -1 for i in range(n)], ts):
            want.append((b, grids, audio))
    assert got == want
    # audio and video of one video are interleaved, not chunked: some audio sits between grids
    if name != "image_before_video":
        assert any(audio and audio[0] < grids[-1][-1] for _, grids, audio in want)


def test_token_order_is_the_processors() -> None:
    processor = tiny.tiny_processor()
    seg = S.av_clip(3.0, grid_h=1, grid_w=2, fps=1.0)
    text = processor.replace_video_with_audio_token(
        {
            "video_grid_thw": torch.tensor([[seg.grid_t, 2, 4]]),
            "video_second_per_grid": [seg.second_per_grid],
        },
        0,
        {"num_audio_tokens": [seg.audio_len]},
        0,
        position_id_per_seconds=13,
    )
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    batch = S.build_batch([[seg]], HIDDEN)
    assert ids == batch.input_ids[0, 1:-1].tolist()


# ---------------------------------------------------------------------------------------------------
# Selection parity
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_keep_mask_matches_literal_reference(selector, seed) -> None:
    rng = random.Random(seed)
    samples = [random_sample(rng) for _ in range(4)]
    batch = S.build_batch(samples, HIDDEN, seed=seed)
    video_drop, audio_drop = rng.choice([0.7, 0.5, 0.29]), rng.choice([0.3, 0.5])
    settings = dict(selector=selector, video_drop=video_drop, audio_drop=audio_drop, token_ids=TOKEN_IDS)
    keep = keep_mask(
        batch.inputs_embeds,
        batch.input_ids,
        batch.position_ids,
        attention_mask=batch.attention_mask,
        **settings,
    )
    for b in range(len(samples)):
        valid = batch.attention_mask[b].bool()
        alone = (
            batch.inputs_embeds[b : b + 1, valid],
            batch.input_ids[b : b + 1, valid],
            batch.position_ids[:, b : b + 1, valid],
        )
        want = literal_keep_mask(*alone, **settings)[0]
        assert torch.equal(keep[b][valid], want), (seed, b)
        assert torch.equal(keep_mask(*alone, **settings)[0], want)


# ---------------------------------------------------------------------------------------------------
# attach on the stock thinker (zero drop, compact prefill, decode, DeepStack, batch invariance, every method:
# tests/models/test_family_matrix.py)
# ---------------------------------------------------------------------------------------------------


def greedy(model, inputs, n=5):
    with torch.no_grad():
        out = model.generate(**inputs, use_audio_in_video=True, max_new_tokens=n, do_sample=False)
    return out[:, inputs["input_ids"].shape[1] :]


def test_the_language_model_gets_float_positions_and_deepstack_inputs(thinker) -> None:
    seen = language_model_inputs(thinker, model_inputs(PADDED, seed=3))
    assert seen["position_ids"].is_floating_point()
    assert set(Qwen3OmniMoeAdapter.filtered_inputs) <= set(seen)
    assert Qwen3OmniMoeAdapter.filtered_inputs == ("visual_pos_masks", "deepstack_visual_embeds")


def test_full_model_and_load_model() -> None:
    full = tiny.tiny_full_model(seed=0)
    adapter = find_adapter(full)
    assert isinstance(adapter, Qwen3OmniMoeAdapter) and adapter.thinker is full.thinker
    assert adapter.token_ids == TOKEN_IDS and adapter.hidden_size == HIDDEN
    inputs = model_inputs(PADDED[:2], seed=2)
    with attach(full, CompressionConfig(method="random", video_drop=0.5, audio_drop=0.3, seed=1)) as handle:
        out = greedy(full.thinker, inputs, n=2)
        assert out.shape == (2, 2) and handle.last_stats[0].retained < 1
    loaded = load_model("tiny-qwen3-omni")
    assert type(loaded.model).__name__ == "Qwen3OmniMoeThinkerForConditionalGeneration"
    assert loaded.processor.tokenizer.convert_tokens_to_ids("<|audio_pad|>") == TOKEN_IDS.audio


def test_real_processor_layout_equals_synthetic(tmp_path) -> None:
    """The offline Qwen3-Omni processor on a generated clip lays tokens out as the synthetic builder."""
    from omnisift.models.qwen2_5_omni.fixtures import processor_inputs
    from omnisift.testing.clips import make_clip

    processor = tiny.tiny_processor()
    clip = make_clip(tmp_path / "a.mp4", 3.0, size=(128, 128))
    inputs = processor_inputs(processor, [clip], "Hi")
    ids = inputs["input_ids"][0].tolist()
    start = ids.index(TOKEN_IDS.vision_bos)
    end = ids.index(TOKEN_IDS.vision_eos) + 1
    t, h, w = inputs["video_grid_thw"][0].tolist()
    frames = int(inputs["feature_attention_mask"][0].sum())
    seg = S.Segment(
        "av",
        grid_t=t,
        grid_h=h // 2,
        grid_w=w // 2,
        second_per_grid=float(inputs["video_second_per_grid"][0]),
        mel_frames=frames,
    )
    assert ids[start:end] == S.build_batch([[seg]], HIDDEN).input_ids[0].tolist()
    assert ids.count(TOKEN_IDS.audio) == 39  # 3 s of audio at 13 tokens a second


@pytest.fixture(scope="module")
def qwen3_media(tmp_path_factory):
    """Two generated clips with their audio, a worldsense-style question file and a training file."""
    import json

    from omnisift.testing.clips import make_clip

    root = tmp_path_factory.mktemp("qwen3-media")
    questions, train_rows = [], []
    for i, (seconds, tone) in enumerate([(3.0, 330.0), (2.0, 550.0)]):
        make_clip(root / f"{i}.mp4", seconds, fps=4.0, tone_hz=tone, size=(128, 128))
        prompt = "What is heard?\nA. a tone\nB. speech\nC. music\nD. silence\nThe best answer is:"
        questions.append({"video_path": f"{i}.mp4", "prompt": prompt, "answer": "A", "domain": "d"})
        turns = [{"from": "human", "value": "What is heard?"}, {"from": "gpt", "value": "A tone."}]
        train_rows.append({"video": f"{i}.mp4", "conversations": turns})
    (root / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    return root


def test_evaluation_end_to_end(qwen3_media, tmp_path) -> None:
    from omnisift.evaluation.results import read_rows
    from omnisift.evaluation.runner import EvalConfig, run_eval
    from omnisift.inputs import Protocol

    config = EvalConfig(
        benchmark="worldsense",
        questions=qwen3_media / "questions.jsonl",
        media_root=qwen3_media,
        model="tiny-qwen3-omni",
        out=tmp_path,
        compression=CompressionConfig(method="omnisift", retain=0.3),
        batch_size=2,
        workers=0,
        progress=False,
        protocol=Protocol(max_new_tokens=3),
    )
    rows = read_rows(run_eval(config).shard_file)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        tokens = row["tokens"]
        assert (
            tokens["video_after"] < tokens["video_before"] and tokens["audio_after"] < tokens["audio_before"]
        )
        assert 0.2 < row["retained"] <= 0.3


def test_selector_recipe_trains_only_the_selector(qwen3_media, tmp_path) -> None:
    from omnisift.training import TrainConfig, train

    thinker = tiny.tiny_thinker(seed=0)
    before = {k: v.clone() for k, v in thinker.state_dict().items()}
    config = TrainConfig(
        data=qwen3_media / "train.jsonl",
        media_root=qwen3_media,
        out=tmp_path / "run",
        model="tiny-qwen3-omni",
        steps=2,
        lr=1e-3,
        warmup_ratio=0.0,
        num_workers=0,
        progress=False,
        compression=CompressionConfig(retain=0.3),
    )
    result = train(config, model=thinker, processor=tiny.tiny_processor())
    assert result.step == 2 and all(0 < r["retained"] < 1 for r in result.records)
    assert all(torch.equal(before[k], v) for k, v in thinker.state_dict().items())  # the model did not move
    from omnisift import load_selector

    trained = load_selector(result.selector_path)
    assert trained.hidden_size == thinker.config.text_config.hidden_size  # sized from the model


def test_load_pretrained_on_a_qwen3_folder_with_selector_keys(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    from omnisift import load_pretrained

    model = tiny.tiny_full_model()
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    selector = VisionGuidedAudioSelector(model.config.thinker_config.text_config.hidden_size)
    weights.update({f"thinker.compressor.{k}": v.contiguous() for k, v in selector.state_dict().items()})
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded, handle = load_pretrained(tmp_path)
    try:
        assert type(loaded).__name__ == "Qwen3OmniMoeForConditionalGeneration"
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
        assert torch.equal(handle.selector.v_proj.weight, selector.v_proj.weight)
    finally:
        handle.remove()
