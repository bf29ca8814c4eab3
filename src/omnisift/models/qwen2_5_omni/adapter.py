"""Qwen2.5-Omni in transformers 5.23: where to hook and the family's facts (docs/design.md#qwen25-omni).

Everything is final at `thinker.model.language_model(...)`: the encoders' features are merged into
`inputs_embeds` and the M-RoPE ids are computed. `input_ids` are not passed there, so they are
captured by a pre-hook on `thinker.model`. `rope_deltas` (kept on `thinker.model`) is what a manual
decode with `position_ids=None` uses. Audio and video of one clip are interleaved in 2-second chunks;
t ids are integers, 25 per second for both.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ...layout import TokenIds
from ..base import AudioAttention, ModelAdapter, VisionAttention

__all__ = ["Qwen25OmniAdapter", "TOKEN_IDS"]

TOKEN_IDS = TokenIds(
    audio=151646,
    audio_bos=151647,
    audio_eos=151648,
    vision_bos=151652,
    vision_eos=151653,
    image=151655,
    video=151656,
)
"""The real checkpoints' special token ids (tokenizer and thinker config agree on them)."""


def _encoder_frames(feature_lens: torch.Tensor) -> list[int]:
    """Frames after the encoder's stride-2 convolution, per audio input."""
    return ((feature_lens.long() - 1) // 2 + 1).tolist()


def _pool_pairs(frame_scores: torch.Tensor) -> torch.Tensor:
    """Average adjacent frame pairs like the encoder's stride-2 pooling: (L - 2) // 2 + 1 tokens."""
    tokens = (frame_scores.numel() - 2) // 2 + 1
    if tokens <= 0:
        return frame_scores.new_zeros(0)
    return (frame_scores[0 : 2 * tokens : 2] + frame_scores[1 : 2 * tokens : 2]) / 2


def _project_separate(attention: torch.nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys of a vision attention with separate `q` / `k` projections, [patches, heads, d]."""
    rows = hidden.shape[0]
    return (
        attention.q(hidden).reshape(rows, attention.num_heads, -1),
        attention.k(hidden).reshape(rows, attention.num_heads, -1),
    )


class Qwen25OmniAdapter(ModelAdapter):
    """Qwen2.5-Omni (3B, 7B): `Qwen2_5OmniForConditionalGeneration` or its thinker."""

    family = "Qwen2.5-Omni"
    full_class = "Qwen2_5OmniForConditionalGeneration"
    thinker_class = "Qwen2_5OmniThinkerForConditionalGeneration"
    model_types: ClassVar[dict[str, str]] = {
        "qwen2_5_omni": "Qwen2_5OmniForConditionalGeneration",
        "qwen2_5_omni_thinker": "Qwen2_5OmniThinkerForConditionalGeneration",
    }
    real_token_ids = TOKEN_IDS
    processor_class = "Qwen2_5OmniProcessor"
    tiny_names = ("tiny", "tiny-qwen2.5-omni")
    tiny_pixel_bounds = (28 * 28 * 4, 28 * 28 * 16)
    frame_factor = 28  # vision patch 14 x spatial merge 2
    audio_window_s = 300.0  # the processor pads or cuts audio to 4.8 M samples at 16 kHz
    audio_tokens_per_second = 25.0
    position_ids_per_second = 25.0
    loads_without_talker: ClassVar[dict[str, Any]] = {"enable_audio_output": False}
    inner_llm_layers: ClassVar[dict[int, tuple[tuple[int, ...], int]]] = {28: ((16, 18, 20), 23)}
    """Qwen2.5-Omni-7B (28 layers): SEATS' drops before layers 16, 18, 20 and no audio/video from 23."""

    def audio_attention(self) -> AudioAttention:
        encoder = self.thinker.model.audio_tower
        layers = getattr(encoder, "layers", None)
        if not layers:
            raise ValueError(f"{type(encoder).__name__} has no `layers`: not a Qwen2.5-Omni audio encoder.")
        return AudioAttention(
            encoder=encoder,
            attention=layers[-1].self_attn,
            frames_per_input=_encoder_frames,
            pool=_pool_pairs,
        )

    def vision_attention(self) -> VisionAttention:
        """The last vision block; its patches arrive reordered into spatial windows (`get_vision_window_index`)."""
        from transformers.vision_utils import get_vision_window_index  # here: keeps `import omnisift` light

        encoder = self.thinker.model.visual
        config = encoder.config

        def window_index(grid_thw: torch.Tensor) -> torch.Tensor:
            index, _ = get_vision_window_index(
                grid_thw,
                spatial_merge_size=config.spatial_merge_size,
                window_size=config.window_size,
                patch_size=config.patch_size,
            )
            return index

        return VisionAttention(
            encoder=encoder,
            attention=encoder.blocks[-1].attn,
            project=_project_separate,
            window_index=window_index,
            merge_unit=config.spatial_merge_size**2,
        )
