"""OmniZip's audio saliency: the hook on the stock audio encoder, and its mapping onto the sequence."""

from __future__ import annotations

import pytest
import torch
from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import Qwen2_5OmniAudioEncoderConfig
from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniAudioEncoder

from omnisift.methods.omnizip import AudioSaliencyRecorder, saliency_to_sequence
from omnisift.models import find_adapter
from omnisift.models.base import AudioAttention
from omnisift.models.qwen2_5_omni import TOKEN_IDS
from omnisift.testing.tiny_configs import tiny_audio_config


def _encoder() -> Qwen2_5OmniAudioEncoder:
    sizes = tiny_audio_config(24, num_mel_bins=8, encoder_layers=2, n_window=10, max_source_positions=200)
    config = Qwen2_5OmniAudioEncoderConfig(**sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = Qwen2_5OmniAudioEncoder(config).eval()
        for p in encoder.parameters():  # larger weights: attention far from uniform
            p.data.normal_(0.0, 0.5)
    return encoder


@torch.no_grad()
def _reference(hidden: torch.Tensor, attention, frames: list[int]) -> list[torch.Tensor]:
    """Literal float64 recomputation: full softmax per head over each audio's frames."""
    out = []
    for h in hidden.double().split(frames):
        q = torch.nn.functional.linear(h, attention.q_proj.weight.double(), attention.q_proj.bias.double())
        k = torch.nn.functional.linear(h, attention.k_proj.weight.double())
        heads = attention.num_heads
        q = q.view(len(h), heads, -1).transpose(0, 1)
        k = k.view(len(h), heads, -1).transpose(0, 1)
        probs = torch.softmax(q @ k.transpose(1, 2) / (q.shape[-1] ** 0.5), dim=-1)
        received = probs.mean(0).sum(0)
        tokens = (len(h) - 2) // 2 + 1
        out.append(torch.stack([(received[2 * i] + received[2 * i + 1]) / 2 for i in range(tokens)]))
    return out


def _encoder_attention(encoder) -> AudioAttention:
    """The Qwen2.5-Omni adapter's facts for a bare audio encoder (no thinker around it)."""
    from omnisift.models.qwen2_5_omni.adapter import _encoder_frames, _pool_pairs

    return AudioAttention(encoder, encoder.layers[-1].self_attn, _encoder_frames, _pool_pairs)


def test_hook_records_encoder_attention_saliency_per_audio():
    encoder = _encoder()
    lens = torch.tensor([57, 130, 41])
    features = torch.randn(8, int(lens.sum()), generator=torch.Generator().manual_seed(1))
    captured = {}
    layer = encoder.layers[-1]
    probe = layer.self_attn_layer_norm.register_forward_hook(lambda m, i, o: captured.setdefault("x", o))
    thinker_free = _encoder_attention(encoder)
    with AudioSaliencyRecorder(thinker_free) as recorder, torch.no_grad():
        encoder(features, feature_lens=lens, aftercnn_lens=(lens - 1) // 2 + 1)
    probe.remove()
    _, tokens = encoder._get_feat_extract_output_lengths(lens)
    assert [s.numel() for s in recorder.scores] == tokens.tolist()
    frames = ((lens - 1) // 2 + 1).tolist()
    for got, want in zip(recorder.scores, _reference(captured["x"], layer.self_attn, frames), strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
        assert float(want.std()) > 0.05  # the scores are informative, not uniform
    # Removed on exit: a later forward records nothing.
    recorder.scores = None
    with torch.no_grad():
        encoder(features, feature_lens=lens, aftercnn_lens=(lens - 1) // 2 + 1)
    assert recorder.scores is None


def test_hook_finds_the_encoder_of_a_thinker():
    from omnisift.models.qwen2_5_omni import fixtures as tiny

    thinker = tiny.tiny_thinker()
    mel = thinker.config.audio_config.num_mel_bins
    features = torch.randn(2, mel, 300, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(2, 300, dtype=torch.long)
    mask[0, :300] = 1
    mask[1, :170] = 1
    with AudioSaliencyRecorder(find_adapter(thinker).audio_attention()) as recorder, torch.no_grad():
        out = thinker.get_audio_features(features, feature_attention_mask=mask)
    assert sum(s.numel() for s in recorder.scores) == out.last_hidden_state.shape[0]
    assert all(bool(torch.isfinite(s).all()) for s in recorder.scores)


def test_hook_needs_a_supported_model():
    with pytest.raises(ValueError, match="does not support Linear"):
        find_adapter(torch.nn.Linear(2, 2))


def test_saliency_lands_on_audio_positions_in_order():
    ids = TOKEN_IDS
    a, t = ids.audio, 100
    input_ids = torch.tensor([[t, a, a, t, a, t], [t, t, a, a, a, t]])
    scores = [torch.tensor([1.0, 2.0]), torch.tensor([3.0]), torch.tensor([4.0, 5.0, 6.0])]
    out = saliency_to_sequence(scores, input_ids == ids.audio)
    assert out.shape == input_ids.shape and out.dtype == torch.float32
    assert out[input_ids == a].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert bool(torch.isnan(out[input_ids != a]).all())
    with pytest.raises(ValueError, match="5 audio saliency scores for 6 audio tokens"):
        saliency_to_sequence(scores[:1] + scores[2:], input_ids == ids.audio)
