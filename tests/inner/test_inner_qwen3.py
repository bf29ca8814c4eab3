"""Inner-LLM methods on a 6-layer tiny Qwen3-Omni-MoE thinker: DeepStack inputs filtered at each drop,
batch invariance and stock identity."""

from __future__ import annotations

import pytest
import torch

from omnisift import CompressionConfig, attach
from omnisift.models.qwen3_omni_moe import fixtures as tiny
from omnisift.models.qwen3_omni_moe import synthetic as S

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HIDDEN = 32
PATCH_DIM = 3 * 2 * 16 * 16
SAMPLES = [
    [S.text(4), S.av_clip(4.0, fps=2.0), S.text(3)],
    [S.text(2), S.av_clip(6.0, grid_h=1, fps=1.0), S.text(5)],
]
CONFIGS = {
    # k=1: the drop comes before the second DeepStack addition, which must then see the kept tokens only
    "fastv-om": {"k": 1},
    "fastv": {"k": 1},
    "seats": {"drop_layers": [1, 2, 4], "late_layer": 5},
}


def _inputs(samples, seed: int = 0) -> dict:
    """Processor-like inputs for synthetic layouts (random pixels and mels, the real token order)."""
    b = S.build_batch(samples, HIDDEN, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    frames = b.audio_seqlens
    width = int(frames.max())
    return {
        "input_ids": b.input_ids,
        "attention_mask": b.attention_mask,
        "pixel_values_videos": torch.randn(int(b.video_grid_thw.prod(-1).sum()), PATCH_DIM, generator=gen),
        "video_grid_thw": b.video_grid_thw,
        "video_second_per_grid": b.video_second_per_grid,
        "input_features": torch.randn(len(frames), 128, width, generator=gen),
        "feature_attention_mask": (torch.arange(width) < frames.unsqueeze(1)).long(),
    }


def _single(inputs: dict, b: int) -> dict:
    """Sample `b` of a batch from `_inputs` (one video per sample), padding removed, its own media slices."""
    valid = inputs["attention_mask"][b].bool()
    ids = inputs["input_ids"][b : b + 1, valid]
    thw = inputs["video_grid_thw"]
    start = int(thw[:b].prod(-1).sum())
    frames = int(inputs["feature_attention_mask"][b].sum())
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values_videos": inputs["pixel_values_videos"][start : start + int(thw[b].prod())],
        "video_grid_thw": thw[b : b + 1],
        "video_second_per_grid": inputs["video_second_per_grid"][b : b + 1],
        "input_features": inputs["input_features"][b : b + 1, :, :frames],
        "feature_attention_mask": torch.ones(1, frames, dtype=torch.long),
    }


@pytest.fixture(scope="module")
def thinker():
    return tiny.tiny_thinker(seed=0, num_layers=6)


def _run(thinker, inputs, method):
    config = CompressionConfig(method=method, retain=0.25, method_params=CONFIGS[method])
    with attach(thinker, config) as handle:
        with torch.no_grad():
            logits = thinker(**inputs, use_audio_in_video=True).logits[:, -1]
        tokens = thinker.generate(**inputs, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
    return handle.last_kept_positions, logits, tokens[:, inputs["input_ids"].shape[1] :]


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_batch_equals_each_sample_alone(thinker, method) -> None:
    batch = _inputs(SAMPLES, seed=3)
    kept, logits, tokens = _run(thinker, batch, method)
    pad = (batch["attention_mask"] == 0).sum(1).tolist()
    stages = 5 if method == "seats" else 2  # the LLM input and each drop
    for b in range(len(SAMPLES)):
        alone_kept, alone_logits, alone_tokens = _run(thinker, _single(batch, b), method)
        assert len(kept[b]) == stages
        for layer, positions in alone_kept[0].items():
            assert (kept[b][layer] - pad[b]).tolist() == positions.tolist(), (b, layer)
        torch.testing.assert_close(logits[b], alone_logits[0], atol=2e-4, rtol=1e-4)
        assert torch.equal(tokens[b], alone_tokens[0])


def test_deepstack_features_follow_the_drop(thinker, monkeypatch) -> None:
    """The drop before layer 1 prunes visual tokens whose DeepStack features are added after layer 1: that
    addition sees the compact sequence, a mask with one slot per kept visual token and their features."""
    batch = _inputs(SAMPLES[:1], seed=3)
    lm_class = type(thinker.model.language_model)
    original = lm_class._deepstack_process
    calls = []

    def spy(self, hidden, mask, embeds):
        calls.append((int(mask.sum()), embeds.shape[0], hidden.shape[1]))
        return original(self, hidden, mask, embeds)

    monkeypatch.setattr(lm_class, "_deepstack_process", spy)
    kept, _, _ = _run(thinker, batch, "fastv-om")
    (visual0, features0, length0), (visual1, features1, length1) = calls[:2]
    assert visual0 == features0 and visual1 == features1
    assert visual1 < visual0 and length1 == len(kept[0][1]) < length0


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_retain_one_is_stock(thinker, method) -> None:
    batch = _inputs(SAMPLES, seed=4)
    with torch.no_grad():
        stock = thinker(**batch, use_audio_in_video=True).logits
    config = CompressionConfig(method=method, retain=1.0, method_params=CONFIGS[method])
    with attach(thinker, config), torch.no_grad():
        assert torch.equal(thinker(**batch, use_audio_in_video=True).logits, stock)
