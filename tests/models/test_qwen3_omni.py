"""Qwen3-Omni-MoE: layout, selection parity, attach and DeepStack filtering on a tiny random model.

Inputs are synthetic token layouts (`models.qwen3_omni_moe.synthetic`) with random pixels and mel
features, run through the stock thinker, so the encoders, `get_rope_index` and DeepStack are the model's.
"""

from __future__ import annotations

import random

import pytest
import torch
from transformers import DynamicCache

from omnisift import CompressionConfig, VisionGuidedAudioSelector, attach, keep_mask
from omnisift.inner import InnerLLMMethod
from omnisift.layout import build_layout
from omnisift.loading import load_model
from omnisift.methods import METHODS, available_methods, takes_setting
from omnisift.models import find_adapter
from omnisift.models.qwen3_omni_moe import TOKEN_IDS, Qwen3OmniMoeAdapter
from omnisift.models.qwen3_omni_moe import fixtures as tiny
from omnisift.models.qwen3_omni_moe import synthetic as S
from omnisift.testing.hooks import language_model_inputs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HIDDEN = 32
PATCH_DIM = 3 * 2 * 16 * 16


@pytest.fixture(scope="module")
def thinker():
    return tiny.tiny_thinker(seed=0)


@pytest.fixture(scope="module")
def selector():
    gen = torch.Generator().manual_seed(1)
    sel = VisionGuidedAudioSelector(HIDDEN).eval()
    with torch.no_grad():
        for p in sel.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return sel


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


def reference_keep(embeds, ids, ts, selector, video_drop, audio_drop) -> torch.Tensor:
    keep = torch.ones(len(ids), dtype=torch.bool)
    e = embeds.double()
    for grids, audio in reference_groups(ids, ts):
        first = grids[0]
        k = int(len(first) * video_drop)
        f1 = e[first]
        sim = torch.nn.functional.cosine_similarity(f1, f1.mean(0, keepdim=True), dim=-1)
        for r in sim.argsort(descending=True)[:k].tolist():
            keep[first[r]] = False
        if len(grids) == 2 and len(grids[1]) == len(first):
            second = grids[1]
            sim2 = torch.nn.functional.cosine_similarity(e[second], f1, dim=-1)
            for r in sim2.argsort(descending=True)[:k].tolist():
                keep[second[r]] = False
        anchors = [x for g in grids for x in g if keep[x]]
        if anchors and len(audio) > 1:
            n_keep = len(audio) - int(len(audio) * audio_drop)
            if n_keep > 0:
                with torch.no_grad():
                    scores = selector(embeds[anchors].unsqueeze(0), embeds[audio].unsqueeze(0))[0].reshape(-1)
                for r in scores.argsort(descending=True)[n_keep:].tolist():
                    keep[audio[r]] = False
    return keep


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
    keep = keep_mask(
        batch.inputs_embeds,
        batch.input_ids,
        batch.position_ids,
        selector=selector,
        video_drop=video_drop,
        audio_drop=audio_drop,
        attention_mask=batch.attention_mask,
        token_ids=TOKEN_IDS,
    )
    for b in range(len(samples)):
        valid = batch.attention_mask[b].bool()
        ids = batch.input_ids[b][valid].tolist()
        ts = batch.position_ids[0, b][valid].tolist()
        want = reference_keep(batch.inputs_embeds[b][valid], ids, ts, selector, video_drop, audio_drop)
        assert torch.equal(keep[b][valid], want), (seed, b)
        one = keep_mask(
            batch.inputs_embeds[b : b + 1, valid],
            batch.input_ids[b : b + 1, valid],
            batch.position_ids[:, b : b + 1, valid],
            selector=selector,
            video_drop=video_drop,
            audio_drop=audio_drop,
            token_ids=TOKEN_IDS,
        )
        assert torch.equal(one[0], want)


# ---------------------------------------------------------------------------------------------------
# attach on the stock thinker
# ---------------------------------------------------------------------------------------------------


def greedy(model, inputs, n=5):
    with torch.no_grad():
        out = model.generate(**inputs, use_audio_in_video=True, max_new_tokens=n, do_sample=False)
    return out[:, inputs["input_ids"].shape[1] :]


def test_zero_drop_is_bit_identical(thinker, selector) -> None:
    inputs = model_inputs(PADDED)
    with torch.no_grad():
        stock = thinker(**inputs, use_audio_in_video=True).logits
    stock_tokens = greedy(thinker, inputs)
    with attach(thinker, CompressionConfig(video_drop=0.0, audio_drop=0.0, selector=selector)):
        with torch.no_grad():
            ours = thinker(**inputs, use_audio_in_video=True).logits
        our_tokens = greedy(thinker, inputs)
    assert torch.equal(stock, ours)
    assert torch.equal(stock_tokens, our_tokens)


def compact_by_hand(seen: dict, keep: torch.Tensor) -> dict:
    """The compact language-model call written per sample: kept tokens in order, left padded."""
    mask = seen["attention_mask"].bool()
    kept = keep & mask
    rows = [torch.nonzero(kept[b]).squeeze(1) for b in range(kept.shape[0])]
    width = max(len(r) for r in rows)
    batch, hidden = kept.shape[0], seen["inputs_embeds"].shape[-1]
    embeds = torch.zeros(batch, width, hidden)
    positions = torch.ones(seen["position_ids"].shape[0], batch, width, dtype=seen["position_ids"].dtype)
    attn = torch.zeros(batch, width, dtype=torch.long)
    visual = torch.zeros(batch, width, dtype=torch.bool)
    for b, r in enumerate(rows):
        pad = width - len(r)
        embeds[b, pad:] = seen["inputs_embeds"][b, r]
        positions[:, b, pad:] = seen["position_ids"][:, b, r]
        attn[b, pad:] = 1
        visual[b, pad:] = seen["visual_pos_masks"][b, r]
    kept_visual = torch.cat([keep[b][seen["visual_pos_masks"][b]] for b in range(batch)])
    deepstack = [f[kept_visual] for f in seen["deepstack_visual_embeds"]]
    return {
        "inputs_embeds": embeds,
        "position_ids": positions,
        "attention_mask": attn,
        "visual_pos_masks": visual,
        "deepstack_visual_embeds": deepstack,
        "rows": rows,
    }


def run_lm(thinker, call: dict, **extra):
    args = {k: v for k, v in call.items() if k != "rows"}
    with torch.no_grad():
        out = thinker.model.language_model(**args, **extra)
        return thinker.lm_head(out.last_hidden_state), out


@pytest.fixture(scope="module")
def compressed(thinker, selector):
    inputs = model_inputs(PADDED, seed=3)
    seen = language_model_inputs(thinker, inputs)
    config = CompressionConfig(video_drop=0.6, audio_drop=0.4, selector=selector)
    keep = keep_mask(
        seen["inputs_embeds"],
        inputs["input_ids"],
        seen["position_ids"],
        selector=selector,
        video_drop=0.6,
        audio_drop=0.4,
        attention_mask=inputs["attention_mask"],
        token_ids=TOKEN_IDS,
    )
    return inputs, seen, keep, config


def test_prefill_equals_hand_built_compact_call(thinker, compressed) -> None:
    inputs, seen, keep, config = compressed
    assert seen["position_ids"].is_floating_point()
    assert not keep[seen["visual_pos_masks"]].all() and keep[seen["visual_pos_masks"]].any()
    call = compact_by_hand(seen, keep)
    want, _ = run_lm(thinker, call)
    with attach(thinker, config) as handle:
        with torch.no_grad():
            got = thinker(**inputs, use_audio_in_video=True).logits
        assert handle.last_stats[0].length_after < handle.last_stats[0].length_before
    assert got.shape == want.shape
    valid = call["attention_mask"].bool()
    torch.testing.assert_close(got[valid], want[valid], rtol=0, atol=1e-5)


def test_misplaced_deepstack_features_change_the_output(thinker, compressed) -> None:
    """The test above would fail if DeepStack were left unfiltered: misaligned features move logits."""
    inputs, seen, keep, _ = compressed
    call = compact_by_hand(seen, keep)
    want, _ = run_lm(thinker, call)
    count = call["deepstack_visual_embeds"][0].shape[0]
    shifted = dict(call, deepstack_visual_embeds=[f[:count] for f in seen["deepstack_visual_embeds"]])
    wrong, _ = run_lm(thinker, shifted)
    valid = call["attention_mask"].bool()
    assert (wrong[valid] - want[valid]).abs().max() > 1e-3
    adapter = Qwen3OmniMoeAdapter(thinker)
    with attach(thinker, compressed[3]) as handle:
        handle.adapter.filter_inputs = lambda kwargs, keep, source: None  # DeepStack left unfiltered
        with pytest.raises((RuntimeError, IndexError)):
            with torch.no_grad():
                thinker(**inputs, use_audio_in_video=True)
    assert adapter.filtered_inputs == ("visual_pos_masks", "deepstack_visual_embeds")


def test_generate_equals_manual_greedy_decode(thinker, compressed) -> None:
    inputs, seen, keep, config = compressed
    steps = 4
    call = compact_by_hand(seen, keep)
    cache = DynamicCache(config=thinker.config.text_config)
    logits, _ = run_lm(thinker, call, past_key_values=cache, use_cache=True)
    mask = call["attention_mask"]
    next_pos = torch.where(mask.bool(), call["position_ids"][-3:].amax(0), -1).amax(1)
    tokens = [logits[:, -1].argmax(-1)]
    for step in range(1, steps):
        mask = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype=mask.dtype)], 1)
        pos = (next_pos + step).view(1, -1, 1).expand(3, -1, 1)
        with torch.no_grad():
            embeds = thinker.model.language_model.embed_tokens(tokens[-1]).unsqueeze(1)
            out = thinker.model.language_model(
                inputs_embeds=embeds,
                position_ids=pos,
                attention_mask=mask,
                past_key_values=cache,
                use_cache=True,
            )
        tokens.append(thinker.lm_head(out.last_hidden_state)[:, -1].argmax(-1))
    want = torch.stack(tokens, 1)
    with attach(thinker, config):
        got = greedy(thinker, inputs, n=steps)
    assert torch.equal(got, want)


def test_batch_invariance(thinker, selector) -> None:
    inputs = model_inputs(PADDED, seed=5)
    config = CompressionConfig(video_drop=0.6, audio_drop=0.4, selector=selector)
    with attach(thinker, config):
        together = greedy(thinker, inputs)
        for b in range(len(PADDED)):
            assert torch.equal(greedy(thinker, single(inputs, b))[0], together[b]), b


def single(inputs: dict, b: int) -> dict:
    """Sample `b` of a batch built by `model_inputs`, padding removed, with its own media slices."""
    valid = inputs["attention_mask"][b].bool()
    ids = inputs["input_ids"][b : b + 1, valid]
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    vids_before = sum(
        int((inputs["input_ids"][i] == TOKEN_IDS.video).any()) for i in range(b)
    )  # one video per sample in PADDED
    thw = inputs["video_grid_thw"]
    start = int(thw[:vids_before].prod(-1).sum())
    out["pixel_values_videos"] = inputs["pixel_values_videos"][start : start + int(thw[vids_before].prod())]
    out["video_grid_thw"] = thw[vids_before : vids_before + 1]
    out["video_second_per_grid"] = inputs["video_second_per_grid"][vids_before : vids_before + 1]
    frames = int(inputs["feature_attention_mask"][b].sum())
    out["input_features"] = inputs["input_features"][b : b + 1, :, :frames]
    out["feature_attention_mask"] = torch.ones(1, frames, dtype=torch.long)
    return out


@pytest.mark.parametrize(
    "method", [m for m in available_methods() if not issubclass(METHODS[m], InnerLLMMethod)]
)  # inner-LLM methods: tests/inner/test_inner_qwen3.py
def test_every_method_through_attach_and_generate(thinker, selector, method) -> None:
    inputs = model_inputs(PADDED, seed=7)
    shortcuts = {k: v for k, v in {"selector": selector, "seed": 3}.items() if takes_setting(method, k)}
    config = CompressionConfig(method=method, video_drop=0.6, audio_drop=0.3, **shortcuts)
    with attach(thinker, config) as handle:
        with torch.no_grad():
            out = thinker.generate(**inputs, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
        stats = handle.last_stats
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3
    assert all(s.length_after < s.length_before for s in stats), method


def test_omnizip_reads_the_audio_encoder_attention(thinker, caplog) -> None:
    inputs = model_inputs(PADDED, seed=7)
    config = CompressionConfig(method="omnizip", video_drop=0.6, audio_drop=0.3)
    with caplog.at_level("INFO"), attach(thinker, config) as handle:
        with torch.no_grad():
            thinker(**inputs, use_audio_in_video=True)
        assert handle.method._recorder is not None and handle.method._recorder.scores is None
    assert "proxy" not in caplog.text


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
