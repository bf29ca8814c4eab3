"""Offline building blocks of the tiny fixture processors (no downloads): a byte-level tokenizer that
carries a family's real special-token ids, the omni processor around it, and a switch that quiets
transformers' config chatter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from transformers import Qwen2Tokenizer
from transformers.utils import logging as hf_logging

__all__ = [
    "CHAT_TOKEN_IDS",
    "byte_level_tokenizer",
    "greedy_by_default",
    "omni_processor",
    "quiet_transformers",
    "special_tokens",
]

CHAT_TOKEN_IDS: dict[str, int] = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
"""The chat tokens every Qwen omni family shares, with their ids in the real vocabularies."""


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' config validation chatter while building tiny configs (e.g. the stock
    talker config warns about ids that index the thinker vocabulary: noise)."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _bytes_to_unicode() -> dict[int, str]:
    """Byte -> printable character table of byte-level BPE (printable bytes map to themselves).

    The order gives byte-level ids 0..255 in the same order as GPT-2/Qwen vocabularies.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    ordered = printable + [b for b in range(256) if b not in printable]
    return {b: table[b] for b in ordered}


def special_tokens(named_tokens: dict[str, str], token_ids: Any) -> dict[str, int]:
    """Every special token of a family's tiny tokenizer with its real id: the shared chat tokens, then each
    media token of `named_tokens` (processor attribute `<field>_token` -> token text) with the id of
    `token_ids.<field>` (the family's `TokenIds`)."""
    media = {token: getattr(token_ids, attr.removesuffix("_token")) for attr, token in named_tokens.items()}
    return {**CHAT_TOKEN_IDS, **media}


def byte_level_tokenizer(special_tokens: dict[str, int], named_tokens: dict[str, str]) -> Qwen2Tokenizer:
    """A byte-level Qwen2 tokenizer (no merges) whose special tokens carry the given ids.

    Every string tokenizes (one id per UTF-8 byte) and decodes back exactly; special tokens are atomic.
    `named_tokens` are the attributes processors read (``tokenizer.video_token`` ...).
    """
    vocab = {ch: i for i, ch in enumerate(_bytes_to_unicode().values())}
    vocab.update(special_tokens)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=dict(named_tokens),
        padding_side="left",
        model_max_length=32768,
    )
    tokenizer.add_special_tokens(
        {"extra_special_tokens": ["<|im_start|>", "<|im_end|>"]}, replace_extra_special_tokens=False
    )
    for token, expected in special_tokens.items():
        got = tokenizer.convert_tokens_to_ids(token)
        if got != expected:  # pragma: no cover - guards against a tokenizers behaviour change
            raise RuntimeError(f"byte-level tokenizer maps {token} to {got}, expected {expected}")
    return tokenizer


def omni_processor(
    processor_class: type,
    tokenizer: Any,
    chat_template: str,
    *,
    patch_size: int,
    min_pixels: int,
    max_pixels: int,
    audio_chunk_length: int = 30,
) -> Any:
    """An omni processor built offline: real Qwen2-VL image/video processors, Whisper features (128 mels,
    `audio_chunk_length` s window: longer audio is cut), the given tokenizer and template.

    The omni processor classes carry their own video size defaults that override the video processor's,
    so the small pixel limits are also set on this instance's `videos_kwargs` / `images_kwargs`.
    """
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor, WhisperFeatureExtractor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    grid = dict(patch_size=patch_size, merge_size=2, temporal_patch_size=2)
    processor = processor_class(
        image_processor=Qwen2VLImageProcessor(size=dict(size), **grid),
        video_processor=Qwen2VLVideoProcessor(size=dict(size), **grid),
        feature_extractor=WhisperFeatureExtractor(
            feature_size=128, sampling_rate=16000, chunk_length=audio_chunk_length, return_attention_mask=True
        ),
        tokenizer=tokenizer,
        chat_template=chat_template,
    )
    processor.videos_kwargs = {"size": dict(size)}
    processor.images_kwargs = {"size": dict(size)}
    return processor


def greedy_by_default(model: Any, pad_id: int, eos_id: int) -> None:
    """Greedy decoding with the family's real pad/eos ids, so generate() neither warns nor samples."""
    generation = model.generation_config
    generation.pad_token_id = pad_id
    generation.eos_token_id = eos_id
    generation.do_sample = False
