"""Qwen2.5-Omni: the adapter, synthetic layouts (`synthetic`) and tiny random-weight fixtures (`fixtures`)."""

from .adapter import TOKEN_IDS, Qwen25OmniAdapter

__all__ = ["Qwen25OmniAdapter", "TOKEN_IDS"]
