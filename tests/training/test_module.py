import pytest
import torch
from torch import nn
from training_helpers import batch_of

from omnisift import CompressionConfig, VisionGuidedAudioSelector
from omnisift.methods.omnisift import straight_through
from omnisift.models.qwen2_5_omni.fixtures import tiny_thinker
from omnisift.training import IGNORE_INDEX, OmniSIFTTrainingModule, apply_recipe, compress_labels


def _module(video_drop=0.7, audio_drop=0.3, seed=0):
    thinker = tiny_thinker(seed=0)
    torch.manual_seed(seed)
    selector = VisionGuidedAudioSelector(thinker.config.text_config.hidden_size)
    return OmniSIFTTrainingModule(
        thinker, selector, CompressionConfig(video_drop=video_drop, audio_drop=audio_drop)
    )


def test_loss_equals_the_stock_loss_when_nothing_is_dropped(cached, processor):
    batch = batch_of(cached, processor, [0, 2])
    module = _module(video_drop=0.0, audio_drop=0.0)
    with torch.no_grad():
        ours = module(batch)["loss"]
        assert module.handle.last_source_index is None
        module.detach_compression()
        stock = module.thinker(**{k: v for k, v in batch.items()}, use_cache=False).loss
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-6)


def test_labels_follow_the_keep_mask(cached, processor):
    batch = batch_of(cached, processor, [0, 1, 2])
    module = _module()
    with torch.no_grad():
        hidden, labels, retained = module.compressed_hidden(batch)
    source = module.handle.last_source_index
    assert source is not None and hidden.shape[:2] == labels.shape == source.shape
    assert all(r < 1 for r in retained)
    picked = labels != IGNORE_INDEX
    assert int(picked.sum()) == int((batch["labels"] != IGNORE_INDEX).sum())
    # Each labelled slot holds the very token its label is (the answer text survived, in order).
    kept_ids = batch["input_ids"].gather(1, source.clamp_min(0))
    assert torch.equal(kept_ids[picked], labels[picked])
    assert bool((labels[source < 0] == IGNORE_INDEX).all())


def test_compress_labels_refuses_a_dropped_label():
    labels = torch.tensor([[IGNORE_INDEX, 5, 6]])
    assert torch.equal(
        compress_labels(labels, torch.tensor([[-1, 1, 2]])), torch.tensor([[IGNORE_INDEX, 5, 6]])
    )
    assert compress_labels(labels, None) is labels
    with pytest.raises(RuntimeError, match="dropped labelled tokens"):
        compress_labels(labels, torch.tensor([[-1, 0, 2]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_straight_through_factor_is_exactly_one(dtype):
    torch.manual_seed(0)
    scores = torch.rand(4096, dtype=torch.float64).clamp(1e-6, 1 - 1e-6).to(dtype).requires_grad_()
    embeds = torch.randn(1, 4096, 8, dtype=dtype)
    out = straight_through(embeds, torch.arange(4096), torch.ones(4096, dtype=torch.bool), scores)
    assert torch.equal(out, embeds)
    out.sum().backward()
    assert scores.grad is not None and bool((scores.grad != 0).any())


def test_train_mode_gives_the_eval_logits_bit_for_bit(cached, processor):
    batch = batch_of(cached, processor, [0, 2])
    module = _module()
    lm_head = module.thinker.lm_head
    module.eval()
    with torch.no_grad():
        hidden_eval, labels_eval, _ = module.compressed_hidden(batch)
        logits_eval = lm_head(hidden_eval)
    source_eval = module.handle.last_source_index.clone()
    module.train()
    assert module.compressor.training and not module.encoders[0].training and not module.encoders[1].training
    hidden_train, labels_train, _ = module.compressed_hidden(batch)
    logits_train = lm_head(hidden_train)
    assert hidden_train.requires_grad  # the straight-through factor is in the graph...
    assert torch.equal(module.handle.last_source_index, source_eval)
    assert torch.equal(labels_train, labels_eval)
    assert torch.equal(logits_train, logits_eval)  # ...and multiplies by exactly 1
    logits_train.float().pow(2).mean().backward()
    assert any(p.grad is not None and bool((p.grad != 0).any()) for p in module.compressor.parameters())


def test_selector_recipe_gives_gradients_to_the_selector_only(cached, processor):
    module = _module()
    names = apply_recipe(module, "selector")
    assert names and all(n.startswith("compressor.") for n in names)
    assert len(names) == len(list(module.compressor.parameters()))
    module.train()
    module(batch_of(cached, processor, [1]))["loss"].backward()
    for name, p in module.compressor.named_parameters():
        assert p.grad is not None, name
    assert sum(float(p.grad.abs().sum()) for p in module.compressor.parameters()) > 0
    assert all(p.grad is None for p in module.model.parameters())


def test_full_recipe_trains_the_llm_not_the_encoders(cached, processor):
    module = _module()
    names = set(apply_recipe(module, "full"))
    thinker = module.thinker
    llm = {f"model.model.language_model.{n}" for n, _ in thinker.model.language_model.named_parameters()}
    llm |= {f"model.lm_head.{n}" for n, _ in thinker.lm_head.named_parameters()}
    selector = {f"compressor.{n}" for n, _ in module.compressor.named_parameters()}
    assert names == llm | selector
    module.train()
    module(batch_of(cached, processor, [1]))["loss"].backward()
    for layer in thinker.model.language_model.layers:
        assert all(p.grad is not None for p in layer.parameters())
    assert thinker.lm_head.weight.grad is not None
    visual, audio = module.encoders
    assert all(p.grad is None and not p.requires_grad for p in [*visual.parameters(), *audio.parameters()])
    assert all(not p.requires_grad for p in visual.merger.parameters())


def test_models_without_video_and_audio_inputs_are_refused():
    selector = VisionGuidedAudioSelector(32)
    with pytest.raises(ValueError, match="does not support Linear"):
        OmniSIFTTrainingModule(nn.Linear(2, 2), selector)
    thinker = tiny_thinker(seed=0)
    del thinker.model.audio_tower
    with pytest.raises(ValueError, match="no audio encoder.*video with its audio track"):
        OmniSIFTTrainingModule(thinker, selector)
    with pytest.raises(ValueError, match="hidden size 48"):
        OmniSIFTTrainingModule(tiny_thinker(seed=0), VisionGuidedAudioSelector(48))


def test_a_batch_without_media_is_refused(processor):
    module = _module()
    ids = processor.tokenizer("hello there", return_tensors="pt")["input_ids"]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    with pytest.raises(ValueError, match="no video or audio tokens"):
        module(batch)
