"""Qwen3-Omni-MoE in transformers 5.23: where to hook and the family's facts (docs/design.md#qwen3-omni).

Same hook points as Qwen2.5-Omni: everything is final at `thinker.model.language_model(...)`, whose
keyword inputs also carry the DeepStack features (`visual_pos_masks` [B, N] and
`deepstack_visual_embeds`, one [visual tokens, D] tensor per DeepStack layer in row-major visual-token
order); `filter_inputs` filters both with the keep mask so each kept visual token keeps its own features.

Layout: with `use_audio_in_video=True` a video's tokens and its audio track's tokens are merge-sorted one
by one by t id inside one contiguous run (`<vision_bos><audio_bos>` ... `<audio_eos><vision_eos>`; a video
token goes first on equal t). Video t ids are float, `arange(grid_t) * second_per_grid *
position_id_per_seconds`; audio gets one t id per token, 13 tokens per 100 mel frames (one second), and
the released config's `position_id_per_seconds` is 13, so one t unit is one audio token. The special
token ids differ from Qwen2.5-Omni and 5.23's config-class defaults are Qwen2.5 leftovers: ids are read
from the model's config, with the released checkpoint's values (`TOKEN_IDS`) only as fallback.

OmniZip's audio saliency: the audio encoder's last layer (`audio_tower.layers[-1].self_attn`) receives
the flat [tokens, D] hidden states of all audio inputs after the three stride-2 convolutions, one row
per audio token (no pooling after the layers). The encoder itself attends inside windows
(`n_window_infer` frames), but OmniZip's saliency is recomputed from that layer's q/k projections over
all tokens of one audio input, as on Qwen2.5-Omni, so the signal is defined: frames per input are the
audio token counts and the pooling is the identity.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ...layout import TokenIds
from ..base import AudioAttention, ModelAdapter, VisionAttention

__all__ = ["Qwen3OmniMoeAdapter", "TOKEN_IDS", "audio_token_count"]

TOKEN_IDS = TokenIds(
    audio=151675,
    audio_bos=151669,
    audio_eos=151670,
    vision_bos=151652,
    vision_eos=151653,
    image=151655,
    video=151656,
)
"""The released Qwen3-Omni-30B-A3B checkpoints' special token ids."""

CHUNK_FRAMES_TOKENS = 13
"""Audio tokens of one full encoder chunk (2 * n_window = 100 mel frames, one second)."""


def audio_token_count(mel_frames: torch.Tensor, n_window: int = 50) -> torch.Tensor:
    """Audio tokens the encoder emits for `mel_frames` frames: 13 per full chunk of 2 * n_window frames,
    and the rest through three stride-2 convolutions (each halves, rounding up)."""
    frames = torch.as_tensor(mel_frames).long()
    chunk = 2 * n_window
    rest = frames % chunk
    tokens = rest
    for _ in range(3):
        tokens = (tokens - 1).div(2, rounding_mode="floor") + 1
    return tokens + (frames // chunk) * CHUNK_FRAMES_TOKENS


def _identity(scores: torch.Tensor) -> torch.Tensor:
    return scores


def _project_fused(attention: torch.nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys of a vision attention with one fused `qkv` projection, [patches, heads, d]."""
    qkv = attention.qkv(hidden).reshape(hidden.shape[0], 3, attention.num_heads, -1)
    return qkv[:, 0], qkv[:, 1]


class Qwen3OmniMoeAdapter(ModelAdapter):
    """Qwen3-Omni-MoE (30B-A3B): `Qwen3OmniMoeForConditionalGeneration` or its thinker."""

    family = "Qwen3-Omni-MoE"
    full_class = "Qwen3OmniMoeForConditionalGeneration"
    thinker_class = "Qwen3OmniMoeThinkerForConditionalGeneration"
    model_types: ClassVar[dict[str, str]] = {
        "qwen3_omni_moe": "Qwen3OmniMoeForConditionalGeneration",
        "qwen3_omni_moe_thinker": "Qwen3OmniMoeThinkerForConditionalGeneration",
    }
    real_token_ids = TOKEN_IDS
    processor_class = "Qwen3OmniMoeProcessor"
    tiny_names = ("tiny-qwen3-omni",)
    tiny_pixel_bounds = (32 * 32 * 4, 32 * 32 * 16)
    frame_factor = 28
    """The model card's reader (`process_mm_info`, default `image_patch_size=14`) gives frames in multiples of
    28, which the processor (vision patch 16) resizes to multiples of 32; `SamplingConfig(frame_factor=32)`
    matches the reader called with `image_patch_size=16` instead."""
    audio_window_s = None  # the 5.23 processor calls its feature extractor with truncation off
    audio_tokens_per_second = 13.0
    position_ids_per_second = 13.0
    filtered_inputs = ("visual_pos_masks", "deepstack_visual_embeds")
    loads_without_talker: ClassVar[dict[str, Any]] = {"enable_audio_output": False}
    inner_llm_layers: ClassVar[dict[int, tuple[tuple[int, ...], int]]] = {48: ((27, 31, 35), 39)}
    """Qwen3-Omni-30B-A3B (48 layers): SEATS' drops before layers 27, 31, 35 and no audio/video from 39."""

    def audio_attention(self) -> AudioAttention:
        encoder = self.thinker.model.audio_tower
        layers = getattr(encoder, "layers", None)
        if not layers:
            raise ValueError(f"{type(encoder).__name__} has no `layers`: not a Qwen3-Omni audio encoder.")
        n_window = int(encoder.config.n_window)
        return AudioAttention(
            encoder=encoder,
            attention=layers[-1].self_attn,
            frames_per_input=lambda lens: audio_token_count(lens, n_window).tolist(),
            pool=_identity,
        )

    def vision_attention(self) -> VisionAttention:
        """The last vision block; patches arrive in merged order (no window reordering on this family)."""
        encoder = self.thinker.model.visual
        unit = int(encoder.config.spatial_merge_size) ** 2

        def window_index(grid_thw: torch.Tensor) -> torch.Tensor:
            return torch.arange(int(grid_thw.prod(-1).sum()) // unit)

        return VisionAttention(
            encoder=encoder,
            attention=encoder.blocks[-1].attn,
            project=_project_fused,
            window_index=window_index,
            merge_unit=unit,
        )

    def wants_router_aux_loss(self, thinker: torch.nn.Module, kwargs: dict[str, Any]) -> bool:
        wanted = kwargs.get("output_router_logits")
        return bool(thinker.config.text_config.output_router_logits if wanted is None else wanted)

    def router_aux_loss(
        self, router_logits: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        from transformers.models.qwen3_omni_moe import (
            modeling_qwen3_omni_moe as stock,
        )  # here: keeps imports light

        return stock.load_balancing_loss_func(
            router_logits, self.thinker.num_experts, self.thinker.num_experts_per_tok, attention_mask
        )

    def filter_inputs(self, kwargs: dict[str, Any], keep: torch.Tensor, source_index: torch.Tensor) -> None:
        """Keep the DeepStack mask and features of the kept visual tokens only, in compact order.

        The compact batch keeps each row's tokens in order, so the kept visual tokens in row-major order
        of the compact mask are the kept ones in row-major order of the original mask.
        """
        visual = kwargs.get("visual_pos_masks")
        if visual is None:
            return
        visual = visual.to(source_index.device).bool()
        present = source_index >= 0
        rows = torch.arange(source_index.shape[0], device=source_index.device).unsqueeze(1)
        kept = torch.zeros_like(visual)
        kept[rows.expand_as(source_index)[present], source_index[present]] = True
        kwargs["visual_pos_masks"] = visual[rows, source_index.clamp(min=0)] & present
        features = kwargs.get("deepstack_visual_embeds")
        if features is not None:
            kept_visual = kept[visual]
            kwargs["deepstack_visual_embeds"] = [f[kept_visual.to(f.device)] for f in features]
