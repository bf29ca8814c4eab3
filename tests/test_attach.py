"""attach() on the stock tiny Qwen2.5-Omni, checked against the stock model and hand-written references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from omnisift import (
    CompressionConfig,
    VisionGuidedAudioSelector,
    attach,
    keep_mask,
    load_pretrained,
    save_selector,
)
from omnisift.models.qwen2_5_omni import fixtures as tiny
from omnisift.testing.clips import tone_clips
from omnisift.testing.hooks import attached_then_removed, language_model_inputs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return tone_clips(tmp_path_factory.mktemp("clips"), [5.0, 2.0, 3.5])


@pytest.fixture(scope="module")
def batch(processor, clips):
    return tiny.processor_inputs(processor, clips, ["Describe it.", "What sound?", "Count the squares."])


@pytest.fixture(scope="module")
def selector(thinker):
    torch.manual_seed(1)
    return VisionGuidedAudioSelector(thinker.config.text_config.hidden_size).eval()


def _greedy(model, inputs, n=6, **kw):
    with torch.no_grad():
        out = model.generate(**inputs, use_audio_in_video=True, max_new_tokens=n, do_sample=False, **kw)
    return out[:, inputs["input_ids"].shape[1] :]


# Zero-drop identity, prefill against a hand-built compact call, generate against a manual decode and batch
# invariance run for every registered family in tests/models/test_family_matrix.py.


def test_remove_restores_the_stock_model(thinker, batch, selector) -> None:
    with torch.no_grad():
        before = thinker(**batch, use_audio_in_video=True).logits
    handle = attach(thinker, CompressionConfig(selector=selector))
    compressed, after = attached_then_removed(thinker, batch, handle)
    assert compressed.shape[1] < before.shape[1]
    assert torch.equal(before, after)
    assert not thinker.model.language_model._forward_pre_hooks


def _manual_compact(thinker, batch, selector, video_drop=0.7, audio_drop=0.3):
    """Keep mask + gather of kept embeddings/positions by hand, left padded, one sample at a time."""
    merged = language_model_inputs(thinker, batch)
    embeds, positions, mask = merged["inputs_embeds"], merged["position_ids"], merged["attention_mask"]
    with torch.no_grad():
        keep = keep_mask(
            embeds, batch["input_ids"], positions, attention_mask=mask, selector=selector,
            video_drop=video_drop, audio_drop=audio_drop, model=thinker,
        )  # fmt: skip
    keep = keep & mask.bool()
    width = int(keep.sum(1).max())
    rows = []
    for i in range(embeds.shape[0]):
        n = int(keep[i].sum())
        e = torch.zeros(width, embeds.shape[-1])
        p = torch.ones(3, width, dtype=torch.long)
        m = torch.zeros(width, dtype=torch.long)
        e[width - n :] = embeds[i, keep[i]]
        p[:, width - n :] = positions[:, i, keep[i]]
        m[width - n :] = 1
        rows.append((e, p, m))
    return (
        torch.stack([r[0] for r in rows]),
        torch.stack([r[1] for r in rows], dim=1),
        torch.stack([r[2] for r in rows]),
    )


def test_sampling_and_manual_rope_deltas(thinker, batch, selector) -> None:
    _, positions, mask = _manual_compact(thinker, batch, selector)
    kept_max = positions.masked_fill(~mask.bool().unsqueeze(0), -1).amax(dim=(0, 2))
    want = (kept_max + 1 - mask.sum(1)).unsqueeze(1)
    with attach(thinker, CompressionConfig(selector=selector)):
        torch.manual_seed(0)
        with torch.no_grad():
            first = thinker.generate(
                **batch, use_audio_in_video=True, max_new_tokens=4, do_sample=True, top_k=50
            )
        torch.manual_seed(0)
        with torch.no_grad():
            second = thinker.generate(
                **batch, use_audio_in_video=True, max_new_tokens=4, do_sample=True, top_k=50
            )
        assert torch.equal(first, second)
        # rope_deltas follow the kept tokens: max kept position + 1 - kept length
        assert torch.equal(thinker.model.rope_deltas, want)


def test_video_only_images_untouched_and_text_only(thinker, processor, clips) -> None:
    video_only = tiny.processor_inputs(processor, clips[:2], "What moves?", use_audio=False)
    with attach(thinker, CompressionConfig(video_drop=0.5, audio_drop=0.0)) as handle:
        with torch.no_grad():
            thinker(**video_only)
        for stats in handle.last_stats:
            assert stats.audio_before == 0 and stats.video_after == stats.video_before // 2
        text = processor(text=["hello there", "hi"], padding=True, padding_side="left", return_tensors="pt")
        with torch.no_grad():
            got = thinker(**text).logits
    with torch.no_grad():
        want = thinker(**text).logits
    assert torch.equal(got, want)


def test_refused_paths(thinker, batch, selector) -> None:
    with attach(thinker, CompressionConfig(selector=selector)):
        with pytest.raises(RuntimeError, match="already attached"):
            attach(thinker, CompressionConfig(selector=selector))
        with pytest.raises(RuntimeError, match="labels"):
            thinker(**batch, use_audio_in_video=True, labels=batch["input_ids"])
        with pytest.raises(RuntimeError, match="static"):
            thinker.generate(
                **batch, use_audio_in_video=True, max_new_tokens=2, cache_implementation="static"
            )
        with pytest.raises(RuntimeError, match="input_ids"):
            embeds = thinker.get_input_embeddings()(batch["input_ids"])
            media = {k: v for k, v in batch.items() if k != "input_ids"}
            thinker(**media, inputs_embeds=embeds, use_audio_in_video=True)
        with torch.no_grad():
            out = thinker(**batch, use_audio_in_video=True, use_cache=True)
            with pytest.raises(RuntimeError, match="media features .* arrived on a non-empty cache"):
                thinker(**batch, use_audio_in_video=True, past_key_values=out.past_key_values)
    with pytest.raises(ValueError, match="supported model classes"):
        attach(torch.nn.Linear(2, 2), CompressionConfig(audio_drop=0.0))
    with pytest.raises(ValueError, match="selector"):
        attach(thinker, CompressionConfig())


def test_full_model_with_talker_is_refused_at_attach_by_name() -> None:
    """A full model whose talker is loaded is refused before any hook goes on (not deep in the talker's
    generate); without a talker, or through its thinker, it attaches and runs."""
    model = tiny.tiny_omni_model(enable_audio_output=True)
    with pytest.raises(
        RuntimeError, match=r"Qwen2_5OmniForConditionalGeneration\.talker .*model\.thinker.*disable_talker"
    ):
        attach(model, CompressionConfig(audio_drop=0.0))
    assert not model.thinker._forward_pre_hooks and not model.thinker.model.language_model._forward_pre_hooks
    attach(model.thinker, CompressionConfig(audio_drop=0.0)).remove()
    model.disable_talker()
    with attach(model, CompressionConfig(audio_drop=0.0)):
        ids = torch.tensor([[tiny.IM_START_ID, 100, 101, tiny.IM_END_ID]])
        model.enable_talker()  # a talker loaded after attach: the next call is refused, by name
        with pytest.raises(RuntimeError, match=r"\.talker .*loaded"):
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), thinker_max_new_tokens=2,
                           talker_max_new_tokens=2)  # fmt: skip


def test_qwen3_full_model_with_talker_is_refused_at_attach() -> None:
    from omnisift.models.qwen3_omni_moe import fixtures as tiny3

    model = tiny3.tiny_full_model()
    attach(model, CompressionConfig(audio_drop=0.0)).remove()
    model.talker = torch.nn.Linear(2, 2)  # stands for the 30B talker, which has no tiny config here
    with pytest.raises(
        RuntimeError, match=r"Qwen3OmniMoeForConditionalGeneration\.talker .*enable_audio_output"
    ):
        attach(model, CompressionConfig(audio_drop=0.0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "nope"}, "unknown method"),
        ({"video_drop": 1.0}, "video_drop"),
        ({"audio_drop": -0.2}, "audio_drop"),
        ({"retain": 0}, "retain"),
        ({"selector": 3}, "selector"),
        ({"selector": "/does/not/exist"}, "does not exist"),
    ],
)
def test_config_validation(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        CompressionConfig(**kwargs)


def test_3b_shaped_model_with_selector_from_path(tmp_path, processor, clips) -> None:
    model = tiny.tiny_thinker(seed=2, hidden_size=48)
    path = save_selector(VisionGuidedAudioSelector(48), tmp_path / "sel.safetensors")
    inputs = tiny.processor_inputs(processor, clips[:2], "Go.")
    with attach(model, CompressionConfig(selector=path, retain=0.35)) as handle:
        assert handle.selector.hidden_size == 48
        tokens = _greedy(model, inputs, n=3)
        assert tokens.shape == (2, 3)
        assert all(s.retained <= 0.35 for s in handle.last_stats)
    with pytest.raises(ValueError, match="hidden size"):
        attach(tiny.tiny_thinker(hidden_size=32), CompressionConfig(selector=path))


def test_load_pretrained_sets_selector_keys_aside(tmp_path, processor, clips) -> None:
    model = tiny.tiny_omni_model(seed=3)
    model.save_pretrained(tmp_path)
    torch.save(model.speaker_map, tmp_path / "spk_dict.pt")  # the released folder ships its speakers
    hidden = model.config.thinker_config.text_config.hidden_size
    selector = VisionGuidedAudioSelector(hidden)
    shard = "model-selector.safetensors"
    save_file(
        {f"thinker.compressor.{k}": v.contiguous() for k, v in selector.state_dict().items()},
        str(tmp_path / shard),
    )
    index_path = tmp_path / "model.safetensors.index.json"
    if index_path.exists():
        index = json.loads(index_path.read_text())
    else:
        from safetensors import safe_open

        with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
            index = {"metadata": {}, "weight_map": {k: "model.safetensors" for k in f.keys()}}
    index["weight_map"].update({f"thinker.compressor.{k}": shard for k in selector.state_dict()})
    index_path.write_text(json.dumps(index))

    loaded, handle = load_pretrained(tmp_path)
    try:
        assert type(loaded).__name__ == "Qwen2_5OmniForConditionalGeneration"
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
        assert torch.equal(handle.selector.v_proj.weight, selector.v_proj.weight)
        inputs = tiny.processor_inputs(processor, clips[:1], "Go.")
        assert _greedy(loaded.thinker, inputs, n=2).shape == (1, 2)
        assert handle.last_stats[0].retained < 0.9
    finally:
        handle.remove()
    (tmp_path / shard).unlink()
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if "compressor" not in k}
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match="no selector weights"):
        load_pretrained(tmp_path)


def test_beam_search_is_batch_invariant_and_exact_at_zero_drop(
    thinker, processor, clips, batch, selector
) -> None:
    stock = _greedy(thinker, batch, n=4, num_beams=2)
    with attach(thinker, CompressionConfig(video_drop=0.0, audio_drop=0.0, selector=selector)):
        assert torch.equal(_greedy(thinker, batch, n=4, num_beams=2), stock)
    with attach(thinker, CompressionConfig(selector=selector)):
        together = _greedy(thinker, batch, n=4, num_beams=2)
        alone = tiny.processor_inputs(processor, [clips[1]], "What sound?")
        assert torch.equal(_greedy(thinker, alone, n=4, num_beams=2)[0], together[1])


def test_own_decode_loop_on_the_cache_the_model_made(thinker, batch, selector) -> None:
    """A caller's decode loop: prefill without passing a cache (the model makes one), then one token a
    step with the caller's own full-length mask and explicit positions. Its logits equal a decode on
    the hand-compacted batch: the mask is mapped onto the compact cache as in generate. (Without
    position_ids, stock transformers 5.23 itself fails on such a loop: it builds positions over the
    whole mask.)"""
    from transformers import DynamicCache

    steps = 4
    embeds, positions, compact_mask = _manual_compact(thinker, batch, selector)
    next_pos = positions.amax(dim=(0, 2)) + 1
    lm = thinker.model.language_model
    reference_cache = DynamicCache(config=thinker.config.text_config)
    with attach(thinker, CompressionConfig(selector=selector)), torch.no_grad():
        out = thinker(**batch, use_audio_in_video=True, use_cache=True)
        reference = lm(
            inputs_embeds=embeds, position_ids=positions, attention_mask=compact_mask,
            past_key_values=reference_cache, use_cache=True,
        )  # fmt: skip
        cache, mask = out.past_key_values, batch["attention_mask"]
        for step in range(steps):
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            compact_mask = torch.cat([compact_mask, torch.ones_like(compact_mask[:, :1])], 1)
            pos = (next_pos + step).view(1, -1, 1).expand(3, -1, 1)
            out = thinker(
                input_ids=token, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True
            )
            reference = lm(
                inputs_embeds=lm.embed_tokens(token), position_ids=pos, attention_mask=compact_mask,
                past_key_values=reference_cache, use_cache=True,
            )  # fmt: skip
            want = thinker.lm_head(reference.last_hidden_state[:, -1])
            torch.testing.assert_close(out.logits[:, -1], want, rtol=1e-4, atol=1e-4)
