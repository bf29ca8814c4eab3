"""Offline building blocks of the tiny fixture processors (no downloads): a byte-level tokenizer that
carries a family's real special-token ids, and a switch that quiets transformers' config chatter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from transformers import Qwen2Tokenizer
from transformers.utils import logging as hf_logging

__all__ = ["byte_level_tokenizer", "quiet_transformers"]


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
