"""attach() keeps the stock transformers paths working (issue 17): each test runs a path a user of the
stock model may take, with compression attached, against the stock model or a hand-made reference."""

from __future__ import annotations

import gc
import importlib
import threading
import weakref
from pathlib import Path

import pytest
import torch

from omnisift import CompressionConfig, VisionGuidedAudioSelector, attach
from omnisift.models.qwen2_5_omni import fixtures as tiny
from omnisift.testing.clips import tone_clips

attach_module = importlib.import_module("omnisift.attach")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

ZERO = dict(video_drop=0.0, audio_drop=0.0)
VIDEO_HALF = dict(video_drop=0.5, audio_drop=0.0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return tone_clips(tmp_path_factory.mktemp("clips"), [4.0, 2.0])


@pytest.fixture(scope="module")
def batch(processor, clips):
    return tiny.processor_inputs(processor, clips, ["Describe it.", "What sound?"])


@pytest.fixture(scope="module")
def single(processor, clips):
    return tiny.processor_inputs(processor, clips[1:], "What sound?")


@pytest.fixture(scope="module")
def text(processor):
    return processor(text=["hello there", "hi"], padding=True, padding_side="left", return_tensors="pt")


def _greedy(model, inputs, n=6, **kw):
    with torch.no_grad():
        out = model.generate(**inputs, use_audio_in_video=True, max_new_tokens=n, do_sample=False, **kw)
    return out[:, inputs["input_ids"].shape[1] :]


def _logits(model, inputs, **kw):
    with torch.no_grad():
        return model(**inputs, use_audio_in_video=True, **kw).logits


# 1. placeholder ids emitted while decoding ---------------------------------------------------------


def test_placeholder_ids_during_decoding_are_not_refused(thinker, single) -> None:
    """The model emitting a video placeholder id at decode (no features) continues like stock."""
    lm_head = thinker.lm_head
    original = lm_head.bias

    def force_video(module, args, output):
        output = output.clone()
        output[..., tiny.VIDEO_ID] = output.abs().amax() * 10  # the model "says" <|VIDEO|> every step
        return output

    hook = lm_head.register_forward_hook(force_video)
    try:
        stock = _greedy(thinker, single, n=3)
        with attach(thinker, CompressionConfig(**VIDEO_HALF)):
            got = _greedy(thinker, single, n=3)
    finally:
        hook.remove()
    assert lm_head.bias is original
    assert (stock == tiny.VIDEO_ID).all() and torch.equal(got, stock)


# 2. prompt-lookup and assisted decoding ---------------------------------------------------------------


@pytest.mark.parametrize("budget", [ZERO, VIDEO_HALF], ids=["zero-drop", "video-half"])
def test_prompt_lookup_decoding(thinker, single, budget, monkeypatch) -> None:
    """Greedy prompt lookup (stock: batch size 1 only) equals plain greedy: stock at zero drop, the attached
    plain greedy (itself checked against a manual decode in test_attach) when compressing."""
    from transformers import DynamicCache

    stock = _greedy(thinker, single, n=8)
    crops = []
    real_crop = DynamicCache.crop
    monkeypatch.setattr(DynamicCache, "crop", lambda self, n: (crops.append(n), real_crop(self, n))[1])
    with attach(thinker, CompressionConfig(**budget)) as handle:
        plain = _greedy(thinker, single, n=8)
        lookup = _greedy(thinker, single, n=8, prompt_lookup_num_tokens=3)
        assert handle.history[-1].compressed == (budget is VIDEO_HALF)
    assert crops, "no draft was rejected: the test does not exercise cache trimming"
    assert torch.equal(lookup, plain)
    if budget is ZERO:
        assert torch.equal(lookup, stock)


@pytest.mark.parametrize("budget", [ZERO, VIDEO_HALF], ids=["zero-drop", "video-half"])
def test_assisted_decoding_with_an_attached_assistant(thinker, single, budget) -> None:
    assistant = tiny.tiny_thinker(seed=5)
    stock = _greedy(thinker, single, n=6)
    with attach(thinker, CompressionConfig(**budget)), attach(assistant, CompressionConfig(**budget)):
        plain = _greedy(thinker, single, n=6)
        assisted = _greedy(thinker, single, n=6, assistant_model=assistant)
    assert torch.equal(assisted, plain)
    if budget is ZERO:
        assert torch.equal(assisted, stock)


# 3. memory release and re-attach ----------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["thinker", "full-model"])
def test_model_is_collectable_and_reattachable(full) -> None:
    model = tiny.tiny_omni_model(seed=1) if full else tiny.tiny_thinker(seed=1)
    ids = torch.tensor([[tiny.IM_START_ID, 100, 101]])
    thinker = model.thinker if full else model
    for _ in range(2):  # attach -> remove -> attach works on the same object
        handle = attach(model, CompressionConfig(**VIDEO_HALF))
        with torch.no_grad():
            thinker(input_ids=ids)
        handle.remove()
    assert not attach_module._ACTIVE.get(thinker)
    ref = weakref.ref(model)
    del model, thinker, handle
    gc.collect()
    assert ref() is None, "removed attachment keeps the model alive"

    model = tiny.tiny_omni_model(seed=1) if full else tiny.tiny_thinker(seed=1)
    handle = attach(model, CompressionConfig(**VIDEO_HALF))  # never removed: dropping both frees it
    ref = weakref.ref(model)
    del model, handle
    gc.collect()
    assert ref() is None, "live attachment keeps a dropped model alive"


def test_deepcopy_of_an_attached_model_is_attached_on_its_own(single) -> None:
    """copy.deepcopy works like on the stock model (transformers' eager-vs-sdpa tests deep-copy models;
    it raised on the handle's thread-local); the copy compresses through its own handle."""
    import copy

    model = tiny.tiny_thinker(seed=0)
    stock = _logits(model, single)
    handle = attach(model, CompressionConfig(**VIDEO_HALF))
    compressed = _logits(model, single)
    twin = copy.deepcopy(model)
    twin_handle = attach_module._ACTIVE[twin]()
    assert twin_handle is not handle and twin_handle.model is twin
    with pytest.raises(RuntimeError, match="already attached"):
        attach(twin, CompressionConfig(**VIDEO_HALF))
    handle.remove()
    calls = len(twin_handle.history)
    assert torch.equal(_logits(twin, single), compressed) and len(twin_handle.history) == calls + 1
    assert torch.equal(_logits(model, single), stock)
    twin_handle.remove()
    assert torch.equal(_logits(twin, single), stock)


# 4. dtype moves, the caller's selector ---------------------------------------------------------------


def test_bfloat16_after_attach_and_selector_untouched(single) -> None:
    model = tiny.tiny_thinker(seed=0)
    selector = VisionGuidedAudioSelector(model.config.text_config.hidden_size).eval()
    before = {k: v.clone() for k, v in selector.state_dict().items()}
    handle = attach(model, CompressionConfig(selector=selector))
    model.to(torch.bfloat16)
    tokens = _greedy(model, single, n=3)
    assert tokens.shape == (1, 3) and handle.last_stats[0].retained < 1.0
    handle.remove()
    for key, value in selector.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, before[key]), key


@pytest.mark.parametrize("order", ["bf16 model, then attach", "attach, then model.to(bf16)"])
@pytest.mark.parametrize("training", [False, True], ids=["eval selector", "fresh (training-mode) selector"])
def test_fp32_selector_module_follows_a_bf16_model(single, order, training) -> None:
    """An fp32 selector module (a fresh one is in training mode) scores a bf16 model's tokens, in both
    orders; the module is left as it was and an eval-mode one is converted once, not per call."""
    model = tiny.tiny_thinker(seed=0)
    selector = VisionGuidedAudioSelector(model.config.text_config.hidden_size).train(training)
    if order.startswith("bf16"):
        model.to(torch.bfloat16)
    handle = attach(model, CompressionConfig(selector=selector))
    model.to(torch.bfloat16)
    tokens = _greedy(model, single, n=2)
    first = handle.method.selector_for(model.get_input_embeddings().weight[None])
    _logits(model, single)
    assert tokens.shape == (1, 2) and handle.last_stats[0].audio_after < handle.last_stats[0].audio_before
    assert handle.method.selector_for(model.get_input_embeddings().weight[None]) is first
    assert (first is selector) == training
    assert next(selector.parameters()).dtype == torch.float32 and selector.training == training
    handle.remove()


def test_interleaved_video_audio_without_use_audio_in_video_is_refused(thinker, single) -> None:
    """The processor interleaved the audio into the video; run without use_audio_in_video=True the model
    builds separate positions, which main compressed silently (video kept whole, audio cut)."""
    with torch.no_grad():
        stock = thinker(**single).logits
        with (
            attach(thinker, CompressionConfig(**VIDEO_HALF)),
            pytest.raises(RuntimeError, match="interleaved"),
        ):
            thinker(**single)
        with attach(thinker, CompressionConfig(**VIDEO_HALF)), pytest.raises(RuntimeError, match="=False"):
            thinker.generate(**single, use_audio_in_video=False, max_new_tokens=2)
        with attach(thinker, CompressionConfig(**ZERO)):
            assert torch.equal(thinker(**single).logits, stock)


def test_placeholder_ids_in_a_text_only_prompt_generate_like_stock(thinker, processor, single) -> None:
    """Video/audio placeholder ids with no media features (left padded, after a compressed call that left
    its decode state and rope deltas behind): prefill and generate equal stock."""
    ids = processor.tokenizer(
        ["hi <|VIDEO|> there <|AUDIO|> x", "b <|VIDEO|><|VIDEO|>"], return_tensors="pt", padding=True,
        padding_side="left",
    )  # fmt: skip
    assert bool((ids["input_ids"] == tiny.VIDEO_ID).any())

    def runs():
        with torch.no_grad():
            return thinker(**ids).logits, thinker.generate(**ids, max_new_tokens=6, do_sample=False)

    stock = runs()
    with attach(thinker, CompressionConfig(**VIDEO_HALF)) as handle:
        _greedy(thinker, single, n=2)
        assert handle.history[-1].compressed
        got = runs()
    assert torch.equal(got[0], stock[0]) and torch.equal(got[1], stock[1])


def test_a_media_block_without_its_features_generates_like_stock(thinker, processor) -> None:
    """generate hands the thinker an empty `mm_encoder_outputs` dict on every prefill, text-only prompts
    included; main took it for media features, so a prompt holding a whole video-with-audio block of
    placeholders (and no features) was refused in generate while its forward ran like stock."""
    block = "<|vision_bos|><|audio_bos|><|VIDEO|><|AUDIO|><|VIDEO|><|audio_eos|><|vision_eos|>"
    ids = processor.tokenizer(
        [block + " what", "hi " + block], return_tensors="pt", padding=True, padding_side="left"
    )
    for audio_in_video in ({}, {"use_audio_in_video": True}):

        def runs(audio_in_video=audio_in_video):
            thinker.model.rope_deltas = None
            with torch.no_grad():
                return (
                    thinker(**ids, **audio_in_video).logits,
                    thinker.generate(**ids, **audio_in_video, max_new_tokens=4, do_sample=False),
                )

        stock = runs()
        with attach(thinker, CompressionConfig(**VIDEO_HALF)) as handle:
            got = runs()
        assert not any(call.compressed for call in handle.history)
        assert torch.equal(got[0], stock[0]) and torch.equal(got[1], stock[1])


def _assert_runs_like_stock(thinker, runs, settings: dict) -> None:
    """Every output of `runs()` with compression attached equals the stock model's, bit for bit."""
    stock = runs()
    with attach(thinker, CompressionConfig(**settings)):
        attached = runs()
    for want, got in zip(stock, attached, strict=True):
        assert torch.equal(got, want)


# 5. needless refusals are gone -----------------------------------------------------------------------


def test_text_only_paths_run_like_stock(thinker, text) -> None:
    ids, mask = text["input_ids"], text["attention_mask"]
    embeds = thinker.get_input_embeddings()(ids).detach()

    def runs():
        thinker.model.rope_deltas = None  # stock keeps it between calls and reads it without input_ids
        with torch.no_grad():
            return [
                thinker(input_ids=ids).logits,  # no attention_mask
                thinker(inputs_embeds=embeds, attention_mask=mask).logits,  # no input_ids
                thinker(input_ids=ids, attention_mask=mask, labels=ids).loss,  # labels
                thinker.generate(**text, max_new_tokens=3, cache_implementation="static"),  # static cache
            ]

    _assert_runs_like_stock(thinker, runs, VIDEO_HALF)


def test_zero_drop_media_paths_run_like_stock(thinker, single) -> None:
    no_mask = {k: v for k, v in single.items() if k != "attention_mask"}

    def runs():
        return [
            _logits(thinker, no_mask),  # no mask: stock uses plain sequential positions
            _logits(thinker, single, labels=single["input_ids"]),
            _greedy(thinker, single, n=3, cache_implementation="static"),
        ]

    _assert_runs_like_stock(thinker, runs, ZERO)


def test_zero_drop_compiled_decoding_has_no_graph_break(thinker, single) -> None:
    """generate with a static cache and a fullgraph-compiled forward (transformers'
    test_generate_compile_model_forward_fullgraph) works at zero drop like stock: the hook read the cache
    length, a tensor under torch.compile, and branched on it. Backend "eager": dynamo traces, no inductor."""
    from transformers import CompileConfig

    compile_config = CompileConfig(fullgraph=True, dynamic=False, backend="eager")
    compile_config._compile_all_devices = True  # compile on CPU too

    def compiled() -> torch.Tensor:
        torch.compiler.reset()
        return _greedy(thinker, single, n=3, cache_implementation="static", compile_config=compile_config)

    stock = compiled()
    with attach(thinker, CompressionConfig(**ZERO)):
        got = compiled()
    assert torch.equal(got, stock)


def test_compressing_refusals_name_their_cause(thinker, single) -> None:
    no_mask = {k: v for k, v in single.items() if k != "attention_mask"}
    with attach(thinker, CompressionConfig(**VIDEO_HALF)):
        with pytest.raises(RuntimeError, match="pass attention_mask|Pass attention_mask"):
            _logits(thinker, no_mask)
        with pytest.raises(RuntimeError, match="labels"):
            _logits(thinker, single, labels=single["input_ids"])
        with pytest.raises(RuntimeError, match="static"):
            _greedy(thinker, single, n=2, cache_implementation="static")
        text_positions = single["attention_mask"].cumsum(-1) - 1  # as transformers' left-padding test passes
        with pytest.raises(RuntimeError, match="drop position_ids and pass attention_mask"):
            _logits(thinker, single, position_ids=text_positions)


# 6. placeholder ids without media features -------------------------------------------------------------


def test_placeholder_ids_without_features_are_not_compressed(thinker, single) -> None:
    ids_only = {"input_ids": single["input_ids"], "attention_mask": single["attention_mask"]}
    stock = _logits(thinker, ids_only)
    with attach(thinker, CompressionConfig(**VIDEO_HALF)) as handle:
        got = _logits(thinker, ids_only)
        assert not handle.history
    assert torch.equal(got, stock)


# 7. several threads -----------------------------------------------------------------------------------


def test_two_threads_match_sequential_calls(thinker, batch, single) -> None:
    inputs = [single, batch]
    with attach(thinker, CompressionConfig(**VIDEO_HALF)):
        sequential = [(_logits(thinker, x), _greedy(thinker, x, n=4)) for x in inputs]
        results: list = [None, None]
        errors: list = []
        start = threading.Barrier(2)

        def work(i):
            try:
                start.wait()
                for _ in range(2):
                    results[i] = (_logits(thinker, inputs[i]), _greedy(thinker, inputs[i], n=4))
            except Exception as error:  # reported below with its thread
                errors.append((i, error))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    for (want_logits, want_tokens), (logits, tokens) in zip(sequential, results):
        torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-5)
        assert torch.equal(tokens, want_tokens)


# 8. the tiny model is position-sensitive -----------------------------------------------------------------


def _media_slots(out, input_ids):
    media = (input_ids == tiny.VIDEO_ID) | (input_ids == tiny.AUDIO_ID)
    return torch.gather(media, 1, out.source_index.clamp_min(0)) & (out.source_index >= 0)


def test_kept_positions_are_the_stock_positions(thinker, batch) -> None:
    seen = {}

    def grab(module, args, kwargs):
        seen.update(kwargs)

    with torch.no_grad():
        hook = thinker.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
        thinker(**batch, use_audio_in_video=True)
        stock_positions = seen["position_ids"]
        with attach(thinker, CompressionConfig(**VIDEO_HALF)) as handle:
            hook.remove()  # re-register after attach's hook, to see what it passes on
            hook = thinker.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
            thinker(**batch, use_audio_in_video=True)
            source = handle.last_source_index
        hook.remove()
    got = seen["position_ids"]
    valid = source >= 0
    want = torch.gather(stock_positions, 2, source.clamp_min(0).unsqueeze(0).expand(3, -1, -1))
    assert got.shape[2] < stock_positions.shape[2]
    assert torch.equal(got[:, valid], want[:, valid])


def test_positions_shifted_by_one_change_the_output(thinker, batch, monkeypatch) -> None:
    with attach(thinker, CompressionConfig(**VIDEO_HALF)):
        right_logits, right = _logits(thinker, batch), _greedy(thinker, batch, n=6)
    real = attach_module.compress

    def shifted(keep, embeds, positions, mask):
        out = real(keep, embeds, positions, mask)
        out.position_ids[-3:] += _media_slots(out, batch["input_ids"]).unsqueeze(0).long()
        return out

    monkeypatch.setattr(attach_module, "compress", shifted)
    with attach(thinker, CompressionConfig(**VIDEO_HALF)):
        wrong_logits, wrong = _logits(thinker, batch), _greedy(thinker, batch, n=6)
    assert not torch.equal(wrong, right)
    assert (wrong_logits[:, -1] - right_logits[:, -1]).abs().max() > 1e-2
