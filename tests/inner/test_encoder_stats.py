"""SEATS' Stage I statistic against a brute-force count from the encoders' last blocks (Qwen2.5-Omni).

Per 2-second window, per head, softmax(q k^T / sqrt(d)) of every query over the window, averaged over
heads and summed over queries, one query at a time; vision in the encoder's window-reordered patch order
with transformers' own rotary function, averaged over each 2x2 merge group and put back in merged order
by transformers' window index; audio in windows of 100 encoder frames, averaged over adjacent frame pairs.
"""

from __future__ import annotations

import pytest
import torch
from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import apply_rotary_pos_emb_vision
from transformers.vision_utils import get_vision_window_index

from omnisift import build_layout
from omnisift.inner.encoder_stats import EncoderAttentionRecorder
from omnisift.models import find_adapter
from omnisift.testing.hooks import language_model_inputs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _received(queries: torch.Tensor, keys: torch.Tensor, scaling: float) -> torch.Tensor:
    """[n] attention each of n rows receives from every row of its window, one query and head at a time."""
    rows, heads = queries.shape[0], queries.shape[1]
    total = torch.zeros(rows, dtype=torch.float64)
    for i in range(rows):
        for h in range(heads):
            logits = torch.tensor([float(queries[i, h] @ keys[j, h]) * scaling for j in range(rows)])
            total += logits.double().softmax(0) / heads
    return total


def _capture(thinker, inputs):
    """The last vision and audio blocks' inputs during one encode, and the recorder's statistics."""
    seen: dict[str, object] = {}
    visual, audio = thinker.model.visual, thinker.model.audio_tower

    def on_vision(module, args, kwargs):
        seen["vision"] = (
            kwargs.get("hidden_states", args[0] if args else None),
            kwargs["position_embeddings"],
        )

    def on_audio(module, args, kwargs):
        seen["audio"] = kwargs.get("hidden_states", args[0] if args else None)

    def on_visual(module, args, kwargs):
        seen["grid"] = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)

    def on_tower(module, args, kwargs):
        seen["lens"] = kwargs.get("feature_lens", args[1] if len(args) > 1 else None)

    hooks = [
        visual.blocks[-1].attn.register_forward_pre_hook(on_vision, with_kwargs=True),
        audio.layers[-1].self_attn.register_forward_pre_hook(on_audio, with_kwargs=True),
        visual.register_forward_pre_hook(on_visual, with_kwargs=True),
        audio.register_forward_pre_hook(on_tower, with_kwargs=True),
    ]
    adapter = find_adapter(thinker)
    recorder = EncoderAttentionRecorder(adapter)
    try:
        captured = language_model_inputs(thinker, inputs)
    finally:
        recorder.remove()
        for hook in hooks:
            hook.remove()
    layout = build_layout(
        inputs["input_ids"],
        captured["position_ids"][0],
        inputs["attention_mask"],
        token_ids=adapter.token_ids,
    )
    video, audio_stats = recorder.take(layout)
    return seen, video[layout.is_video], audio_stats[layout.is_audio]


@torch.no_grad()
def test_stage_one_statistics_match_a_brute_force_count(deep_thinker, singles) -> None:
    seen, video, audio = _capture(deep_thinker, singles[0])

    attn = deep_thinker.model.visual.blocks[-1].attn
    hidden, (cos, sin) = seen["vision"]
    patches = hidden.shape[0]
    q = attn.q(hidden).reshape(patches, attn.num_heads, -1)
    k = attn.k(hidden).reshape(patches, attn.num_heads, -1)
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    config = deep_thinker.model.visual.config
    reordered, offset = [], 0
    for t, h, w in seen["grid"].tolist():
        for start in range(offset, offset + t * h * w, 2 * h * w):  # a window: two grids of h x w patches
            stop = min(start + 2 * h * w, offset + t * h * w)
            reordered.append(_received(q[start:stop], k[start:stop], attn.scaling))
        offset += t * h * w
    unit = config.spatial_merge_size**2
    per_group = torch.cat(reordered).view(-1, unit).mean(1)
    index, _ = get_vision_window_index(
        seen["grid"],
        spatial_merge_size=config.spatial_merge_size,
        window_size=config.window_size,
        patch_size=config.patch_size,
    )
    expected_video = torch.empty_like(per_group)
    expected_video[index] = per_group
    torch.testing.assert_close(video.double(), expected_video, rtol=1e-4, atol=1e-5)

    attn = deep_thinker.model.audio_tower.layers[-1].self_attn
    frames = seen["audio"].reshape(-1, seen["audio"].shape[-1])
    q = attn.q_proj(frames).reshape(frames.shape[0], attn.num_heads, -1)
    k = attn.k_proj(frames).reshape(frames.shape[0], attn.num_heads, -1)
    (length,) = seen["lens"].tolist()
    count = (length - 1) // 2 + 1  # frames after the encoder's stride-2 convolution
    assert count == frames.shape[0]
    per_frame = torch.cat(
        [_received(q[s : s + 100], k[s : s + 100], attn.scaling) for s in range(0, count, 100)]
    )
    pairs = count // 2
    expected_audio = per_frame[: 2 * pairs].view(pairs, 2).mean(1)
    torch.testing.assert_close(audio.double(), expected_audio, rtol=1e-4, atol=1e-5)
    assert expected_video.std() > 0 and expected_audio.std() > 0  # the statistic varies between tokens
