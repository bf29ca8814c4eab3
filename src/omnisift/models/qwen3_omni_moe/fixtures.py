"""Tiny, offline Qwen3-Omni-MoE fixtures: a random thinker (and full model) and a processor.

Built from configs with the released checkpoint's special token ids (docs/design.md#qwen3-omni) and
`position_id_per_seconds` 13. Two things make the random model a useful test subject: the audio
tower's output projection is re-initialised with a large spread (with the default init every audio
embedding is almost the same vector, so scores tie), and the text attention's q/k norms are scaled
so attention logits are large enough that M-RoPE positions change the output.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    Qwen2Tokenizer,
    Qwen3OmniMoeConfig,
    Qwen3OmniMoeForConditionalGeneration,
    Qwen3OmniMoeProcessor,
    Qwen3OmniMoeThinkerConfig,
    Qwen3OmniMoeThinkerForConditionalGeneration,
)

from ...testing.processors import (
    CHAT_TOKEN_IDS,
    byte_level_tokenizer,
    greedy_by_default,
    omni_processor,
    quiet_transformers,
    special_tokens,
)
from ...testing.tiny_configs import seeded_model, tiny_audio_config, tiny_text_config, tiny_vision_config
from ..qwen2_5_omni.fixtures import CHAT_TEMPLATE as _QWEN25_TEMPLATE
from .adapter import TOKEN_IDS, Qwen3OmniMoeAdapter

__all__ = [
    "PAD_ID",
    "IM_END_ID",
    "TINY_MIN_PIXELS",
    "TINY_MAX_PIXELS",
    "tiny_thinker_config",
    "tiny_thinker",
    "tiny_full_model",
    "tiny_tokenizer",
    "tiny_processor",
]

PAD_ID = CHAT_TOKEN_IDS["<|endoftext|>"]
IM_START_ID = CHAT_TOKEN_IDS["<|im_start|>"]
IM_END_ID = CHAT_TOKEN_IDS["<|im_end|>"]

_NAMED_MEDIA_TOKENS: dict[str, str] = {
    "image_token": "<|image_pad|>",
    "audio_token": "<|audio_pad|>",
    "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
}

SPECIAL_TOKENS: dict[str, int] = special_tokens(_NAMED_MEDIA_TOKENS, TOKEN_IDS)

# The Qwen2.5-Omni fixture template with Qwen3-Omni's token names.
CHAT_TEMPLATE = (
    _QWEN25_TEMPLATE.replace("<|vision_bos|>", "<|vision_start|>")
    .replace("<|vision_eos|>", "<|vision_end|>")
    .replace("<|IMAGE|>", "<|image_pad|>")
    .replace("<|VIDEO|>", "<|video_pad|>")
    .replace("<|audio_bos|>", "<|audio_start|>")
    .replace("<|audio_eos|>", "<|audio_end|>")
    .replace("<|AUDIO|>", "<|audio_pad|>")
)

# 32-pixel merged cells (patch 16, merge 2): a 128x128 frame is 4x4 cells, 16 tokens per grid.
TINY_MIN_PIXELS, TINY_MAX_PIXELS = Qwen3OmniMoeAdapter.tiny_pixel_bounds
HEAD_DIM = 16
QK_NORM_SCALE = 2.0
AUDIO_PROJ_STD = 1.0


def tiny_thinker_config(
    hidden_size: int = 32, num_layers: int = 2, vocab_size: int = 151936
) -> Qwen3OmniMoeThinkerConfig:
    """A tiny Qwen3-Omni-MoE thinker config with the real token ids and rates.

    Head dim 16 with interleaved mrope_section [4, 2, 2] (sums to head_dim / 2); 4 experts, 2 per
    token; two DeepStack layers. `vision_start_token_id` and `audio_end_token_id` are set on the object:
    5.23's `get_rope_index` reads the first although neither is a declared field.
    """
    if hidden_size % HEAD_DIM:
        raise ValueError(f"hidden_size must be a multiple of {HEAD_DIM}, got {hidden_size}")
    heads = hidden_size // HEAD_DIM
    with quiet_transformers():
        config = Qwen3OmniMoeThinkerConfig(
            audio_config=tiny_audio_config(
                hidden_size, n_window=50, n_window_infer=800, downsample_hidden_size=8
            ),
            vision_config=tiny_vision_config(
                hidden_size,
                depth=2,
                patch_size=16,
                num_position_embeddings=64,
                deepstack_visual_indexes=[0, 1],
            ),
            text_config=tiny_text_config(
                vocab_size=vocab_size,
                hidden_size=hidden_size,
                layers=num_layers,
                heads=(heads, heads),
                moe_intermediate_size=hidden_size,
                num_experts=4,
                num_experts_per_tok=2,
                head_dim=HEAD_DIM,
                rope_parameters={
                    "rope_type": "default",
                    "rope_theta": 1e6,
                    "mrope_section": [4, 2, 2],
                    "interleaved": True,
                },
                pad_token_id=PAD_ID,
                eos_token_id=IM_END_ID,
            ),
            audio_token_id=TOKEN_IDS.audio,
            image_token_id=TOKEN_IDS.image,
            video_token_id=TOKEN_IDS.video,
            audio_start_token_id=TOKEN_IDS.audio_bos,
            position_id_per_seconds=13,
        )
    config.vision_start_token_id = TOKEN_IDS.vision_bos
    config.vision_end_token_id = TOKEN_IDS.vision_eos
    config.audio_end_token_id = TOKEN_IDS.audio_eos
    return config


def _make_informative(thinker: Qwen3OmniMoeThinkerForConditionalGeneration) -> None:
    """Spread audio embeddings apart and sharpen text attention (see the module docstring)."""
    with torch.no_grad():
        torch.nn.init.normal_(thinker.model.audio_tower.proj2.weight, std=AUDIO_PROJ_STD)
        for layer in thinker.model.language_model.layers:
            layer.self_attn.q_norm.weight.fill_(QK_NORM_SCALE)
            layer.self_attn.k_norm.weight.fill_(QK_NORM_SCALE)


def tiny_thinker(
    seed: int = 0, attn_implementation: str = "sdpa", **config_kwargs: Any
) -> Qwen3OmniMoeThinkerForConditionalGeneration:
    """A deterministic tiny thinker (eval mode, fp32); the global torch RNG is left untouched."""
    config = tiny_thinker_config(**config_kwargs)
    model = seeded_model(
        Qwen3OmniMoeThinkerForConditionalGeneration, config, seed, attn_implementation, then=_make_informative
    )
    greedy_by_default(model, PAD_ID, IM_END_ID)
    return model.eval()


def tiny_full_model(seed: int = 0, attn_implementation: str = "sdpa") -> Qwen3OmniMoeForConditionalGeneration:
    """The full model class around a tiny thinker, built without the talker (text output only)."""
    thinker_config = tiny_thinker_config()
    with quiet_transformers():
        config = Qwen3OmniMoeConfig(thinker_config=thinker_config.to_dict(), enable_audio_output=False)
    config.thinker_config.vision_start_token_id = TOKEN_IDS.vision_bos
    config.thinker_config.vision_end_token_id = TOKEN_IDS.vision_eos
    config.thinker_config.audio_end_token_id = TOKEN_IDS.audio_eos
    model = seeded_model(
        Qwen3OmniMoeForConditionalGeneration,
        config,
        seed,
        attn_implementation,
        then=lambda full: _make_informative(full.thinker),
    )
    greedy_by_default(model.thinker, PAD_ID, IM_END_ID)
    return model.eval()


def tiny_tokenizer() -> Qwen2Tokenizer:
    """A byte-level tokenizer whose special tokens carry the real Qwen3-Omni names and ids."""
    return byte_level_tokenizer(SPECIAL_TOKENS, _NAMED_MEDIA_TOKENS)


def tiny_processor(
    min_pixels: int = TINY_MIN_PIXELS, max_pixels: int = TINY_MAX_PIXELS, audio_chunk_length: int = 30
) -> Qwen3OmniMoeProcessor:
    """A Qwen3-Omni processor built offline: real Qwen2-VL image/video processors (patch 16), Whisper
    features (128 mels), the byte-level tokenizer above; small pixel limits set on this instance."""
    return omni_processor(
        Qwen3OmniMoeProcessor,
        tiny_tokenizer(),
        CHAT_TEMPLATE,
        patch_size=16,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        audio_chunk_length=audio_chunk_length,
    )
