"""Tiny, offline Qwen2.5-Omni fixtures shared by the tests and the demo.

No weights can be downloaded, so every test builds its model, processor and media here: a random
Qwen2.5-Omni thinker small enough for a 2-core CPU, a processor assembled from the real transformers
5.23 image/video/audio processors plus a byte-level tokenizer that carries the real special-token ids,
synthetic clips (moving frames plus a tone) written with PyAV, and a helper that turns clips into
model inputs with the video's own audio track interleaved (``use_audio_in_video`` semantics), through
``omnisift.inputs``.

5.23 answer: full-model ``generate(..., return_audio=False)`` fails (ValueError: unused model_kwargs ['return_audio']); ``generation_mode="text"`` works only with a talker and a speaker entry, so use ``model.thinker.generate``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    BatchFeature,
    Qwen2_5OmniConfig,
    Qwen2_5OmniForConditionalGeneration,
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2Tokenizer,
)

from ...inputs import Protocol, effective_protocol, encode_batch, load_video
from ...media import Media, SamplingConfig
from ...testing.processors import (
    CHAT_TOKEN_IDS,
    byte_level_tokenizer,
    greedy_by_default,
    omni_processor,
    quiet_transformers,
    special_tokens,
)
from ...testing.tiny_configs import seeded_model, tiny_audio_config, tiny_text_config, tiny_vision_config
from .adapter import TOKEN_IDS, Qwen25OmniAdapter

logger = logging.getLogger(__name__)

# Real Qwen2.5-Omni token ids (the adapter's `TOKEN_IDS`, tokenizer and thinker config agree on them).
PAD_ID = CHAT_TOKEN_IDS["<|endoftext|>"]
IM_START_ID = CHAT_TOKEN_IDS["<|im_start|>"]
IM_END_ID = CHAT_TOKEN_IDS["<|im_end|>"]
AUDIO_ID = TOKEN_IDS.audio
AUDIO_BOS_ID = TOKEN_IDS.audio_bos
AUDIO_EOS_ID = TOKEN_IDS.audio_eos
VISION_BOS_ID = TOKEN_IDS.vision_bos
VISION_EOS_ID = TOKEN_IDS.vision_eos
IMAGE_ID = TOKEN_IDS.image
VIDEO_ID = TOKEN_IDS.video

# Attribute names the 5.23 processor reads from its tokenizer (``tokenizer.image_token`` etc.).
_NAMED_MEDIA_TOKENS: dict[str, str] = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}

SPECIAL_TOKENS: dict[str, int] = special_tokens(_NAMED_MEDIA_TOKENS, TOKEN_IDS)

DEFAULT_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)

# Behaves like Qwen2.5-Omni's template: a default system turn when the first message is not a system
# message, media placeholders wrapped in their bos/eos tokens, optional "Video 1: " style ids, and an
# assistant header as generation prompt. One deliberate choice: an audio part with no source (the
# ``{"type": "audio"}`` marker transformers inserts after a video when loading its audio track)
# renders nothing, because the audio track is interleaved into the video placeholder.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(images=0, videos=0, audios=0) -%}"
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{%- set ns.images = ns.images + 1 -%}"
    "{%- if add_vision_id -%}{{ 'Picture ' + ns.images|string + ': ' }}{%- endif -%}"
    "{{ '<|vision_bos|><|IMAGE|><|vision_eos|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{%- set ns.videos = ns.videos + 1 -%}"
    "{%- if add_vision_id -%}{{ 'Video ' + ns.videos|string + ': ' }}{%- endif -%}"
    "{{ '<|vision_bos|><|VIDEO|><|vision_eos|>' }}"
    "{%- elif part['type'] == 'audio' or 'audio' in part or 'audio_url' in part -%}"
    "{%- if 'audio' in part or 'audio_url' in part or 'url' in part or 'path' in part -%}"
    "{%- set ns.audios = ns.audios + 1 -%}"
    "{%- if add_audio_id -%}{{ 'Audio ' + ns.audios|string + ': ' }}{%- endif -%}"
    "{{ '<|audio_bos|><|AUDIO|><|audio_eos|>' }}"
    "{%- endif -%}"
    "{%- elif part['type'] == 'text' -%}"
    "{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
# The default system text is baked in so the template needs no extra render variables.
CHAT_TEMPLATE = "{%- set default_system = '" + DEFAULT_SYSTEM_PROMPT + "' -%}" + CHAT_TEMPLATE

# Per-frame pixel bounds of the tiny processor: a 112x112 frame stays 112x112 (4x4 merged cells,
# 16 tokens per temporal grid), larger frames are scaled down to at most 4x4 cells.
TINY_MIN_PIXELS, TINY_MAX_PIXELS = Qwen25OmniAdapter.tiny_pixel_bounds


def _text_heads(hidden_size: int, head_dim: int = 8) -> tuple[int, int]:
    """Attention and key/value head counts for a tiny text model of ``hidden_size`` (head_dim 8)."""
    if hidden_size % head_dim:
        raise ValueError(f"hidden_size must be a multiple of {head_dim}, got {hidden_size}")
    heads = hidden_size // head_dim
    kv_heads = heads // 2 if heads % 2 == 0 else heads
    return heads, kv_heads


def tiny_thinker_config(
    hidden_size: int = 32, num_layers: int = 2, vocab_size: int = 151936
) -> Qwen2_5OmniThinkerConfig:
    """A random-weight-sized Qwen2.5-Omni thinker config with the real token ids and chunk layout.

    Head dim is fixed at 8 (mrope_section [1, 1, 2] sums to head_dim / 2), so the head count follows
    ``hidden_size`` (32 -> 4 heads, 48 -> 6, 64 -> 8). ``vision_start_token_id`` is set on the object
    because 5.23's ``get_rope_index`` reads it although it is not a declared field.
    """
    heads, kv_heads = _text_heads(hidden_size)
    if vocab_size <= VIDEO_ID:
        raise ValueError(f"vocab_size must exceed the largest special id {VIDEO_ID}, got {vocab_size}")
    with quiet_transformers():
        config = Qwen2_5OmniThinkerConfig(
            audio_config=tiny_audio_config(hidden_size, n_window=100),
            vision_config=tiny_vision_config(
                hidden_size, fullatt_block_indexes=[0], window_size=112, patch_size=14
            ),
            text_config=tiny_text_config(
                vocab_size=vocab_size,
                hidden_size=hidden_size,
                layers=num_layers,
                heads=(heads, kv_heads),
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]},
                pad_token_id=PAD_ID,
                eos_token_id=IM_END_ID,
            ),
            audio_token_index=AUDIO_ID,
            image_token_index=IMAGE_ID,
            video_token_index=VIDEO_ID,
            audio_start_token_id=AUDIO_BOS_ID,
            audio_end_token_id=AUDIO_EOS_ID,
            position_id_per_seconds=25,
            seconds_per_chunk=2,
        )
    config.vision_start_token_id = VISION_BOS_ID
    return config


QK_SCALE = 12.0
"""Factor on the tiny text model's q/k projections. With std-0.02 weights attention is nearly uniform and
wrong M-RoPE positions leave greedy output unchanged; sharper attention makes positions matter."""


def _sharpen_attention(text_model: Any) -> None:
    """Scale q/k projections (weights and biases) of every text layer by ``QK_SCALE``."""
    with torch.no_grad():
        for layer in text_model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                proj.weight.mul_(QK_SCALE)
                if proj.bias is not None:
                    proj.bias.mul_(QK_SCALE)


def tiny_thinker(
    seed: int = 0, attn_implementation: str = "sdpa", **config_kwargs: Any
) -> Qwen2_5OmniThinkerForConditionalGeneration:
    """A deterministic tiny thinker (eval mode, fp32); ``config_kwargs`` go to ``tiny_thinker_config``.

    Weights depend only on ``seed``; the global torch RNG is left untouched.
    """
    config = tiny_thinker_config(**config_kwargs)
    model = seeded_model(Qwen2_5OmniThinkerForConditionalGeneration, config, seed, attn_implementation)
    _sharpen_attention(model.model.language_model)
    greedy_by_default(model, PAD_ID, IM_END_ID)
    return model.eval()


def _tiny_talker_config(hidden_size: int) -> dict[str, Any]:
    """Talker sized to the tiny thinker (its input projection reads thinker hidden states)."""
    return tiny_text_config(
        vocab_size=8448,
        hidden_size=32,
        layers=1,
        heads=(4, 2),
        embedding_size=hidden_size,
        head_dim=8,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]},
    )


def _tiny_token2wav_config() -> dict[str, Any]:
    """DiT + BigVGAN small enough to build in well under a second (two upsampling stages only)."""
    return dict(
        dit_config=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            head_dim=16,
            ff_mult=2,
            emb_dim=16,
            enc_emb_dim=16,
            enc_dim=16,
            enc_channels=[16, 16, 16, 16, 48],
            enc_attention_channels=8,
            enc_se_channels=8,
            look_ahead_layers=[1],
            look_backward_layers=[0],
            block_size=24,
            mel_dim=80,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        bigvgan_config=dict(
            mel_dim=80,
            upsample_initial_channel=32,
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3, 5]],
            upsample_rates=[5, 3],
            upsample_kernel_sizes=[11, 7],
        ),
    )


def tiny_omni_model(
    seed: int = 0,
    enable_audio_output: bool = False,
    attn_implementation: str = "sdpa",
    **config_kwargs: Any,
) -> Qwen2_5OmniForConditionalGeneration:
    """The full model around a tiny thinker (eval, fp32), optionally with a tiny talker and token2wav.

    Builds in about 0.2 s either way. A dummy "Chelsie" speaker (zero conditioning) is registered because
    5.23's full-model ``generate`` looks the speaker up before anything else, even in text mode. With
    ``enable_audio_output=False`` there is no talker and full-model ``generate`` fails in 5.23
    (AttributeError on ``self.talker``); use ``model.thinker.generate`` for text.
    """
    thinker_config = tiny_thinker_config(**config_kwargs)
    hidden = thinker_config.text_config.hidden_size
    with quiet_transformers():
        config = Qwen2_5OmniConfig(
            thinker_config=thinker_config,
            talker_config=_tiny_talker_config(hidden),
            token2wav_config=_tiny_token2wav_config(),
            enable_audio_output=enable_audio_output,
        )
    # Sub-config objects may be copied during init; keep the undeclared field on the stored one.
    config.thinker_config.vision_start_token_id = VISION_BOS_ID
    model = seeded_model(Qwen2_5OmniForConditionalGeneration, config, seed, attn_implementation)
    _sharpen_attention(model.thinker.model.language_model)
    if enable_audio_output:
        model.token2wav.float()  # token2wav always runs in fp32 in the stock model
    greedy_by_default(model.thinker, PAD_ID, IM_END_ID)
    enc_emb_dim = config.token2wav_config.dit_config.enc_emb_dim
    mel_dim = config.token2wav_config.dit_config.mel_dim
    model.speaker_map["Chelsie"] = {
        "bos_token": 151870,
        "cond": torch.zeros(1, enc_emb_dim),
        "ref_mel": torch.zeros(1, 30, mel_dim),
    }
    return model.eval()


def tiny_tokenizer() -> Qwen2Tokenizer:
    """A byte-level tokenizer whose special tokens carry the real Qwen2.5-Omni ids."""
    return byte_level_tokenizer(SPECIAL_TOKENS, _NAMED_MEDIA_TOKENS)


def tiny_processor(
    min_pixels: int = TINY_MIN_PIXELS,
    max_pixels: int = TINY_MAX_PIXELS,
    audio_chunk_length: int = 30,
) -> Qwen2_5OmniProcessor:
    """A Qwen2.5-Omni processor built fully offline with small pixel limits.

    Real ``Qwen2VLImageProcessor``/``Qwen2VLVideoProcessor`` and ``WhisperFeatureExtractor(128 mels)``,
    the byte-level ``tiny_tokenizer`` and ``CHAT_TEMPLATE``. The processor class carries its own video
    size defaults (128*28*28 .. 768*28*28 pixels) that override the video processor's, so the small
    limits are set on this instance's ``videos_kwargs``/``images_kwargs``. The Whisper window is
    ``audio_chunk_length`` seconds: longer audio is truncated by the processor.
    """
    return omni_processor(
        Qwen2_5OmniProcessor,
        tiny_tokenizer(),
        CHAT_TEMPLATE,
        patch_size=14,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        audio_chunk_length=audio_chunk_length,
    )


ClipLike = str | Path | Media


def processor_inputs(
    processor: Qwen2_5OmniProcessor,
    videos: ClipLike | Sequence[ClipLike],
    prompt: str | Sequence[str],
    *,
    fps: float = 2.0,
    max_frames: int = 256,
    use_audio: bool = True,
    size: dict[str, int] | None = None,
    per_sample: bool = False,
) -> BatchFeature:
    """Model inputs for one or several clips (one video and one prompt per sample, left padded), through
    `omnisift.inputs` (the road evaluation and training take), within the processor's per-frame pixel
    bounds (or `size`: `{"shortest_edge": ..., "longest_edge": ...}`).

    With `use_audio` each clip's own audio track is interleaved into its video placeholder; then call
    `thinker(**inputs, use_audio_in_video=True)`: the flag is not part of the returned dict (use
    `omnisift.inputs.prepare_inputs` for inputs that carry it). Clips sampled at different rates are
    encoded one by one and collated (`per_sample=True` forces that path).
    """
    clips = [videos] if isinstance(videos, (str, Path, Media)) else list(videos)
    prompts = [prompt] * len(clips) if isinstance(prompt, str) else list(prompt)
    if not clips:
        raise ValueError("no videos given")
    if len(prompts) != len(clips):
        raise ValueError(f"{len(clips)} videos but {len(prompts)} prompts")
    bounds = size or getattr(processor, "videos_kwargs", {}).get("size") or processor.video_processor.size
    sampling = SamplingConfig(
        fps=fps, max_frames=max_frames, min_pixels=bounds["shortest_edge"], max_pixels=bounds["longest_edge"]
    )
    protocol = effective_protocol(Protocol(use_audio=use_audio, sampling=sampling), processor=processor)
    decoded = [clip if isinstance(clip, Media) else load_video(clip, protocol) for clip in clips]
    if use_audio:
        for i, clip in enumerate(decoded):
            if clip.audio is None or clip.audio.size == 0:
                raise ValueError(
                    f"clip {i} has no audio track; use_audio_in_video needs audio for every video of the batch"
                )
    out = BatchFeature(encode_batch(processor, decoded, prompts, protocol, per_sample=per_sample))
    out.pop("use_audio_in_video")
    return out
