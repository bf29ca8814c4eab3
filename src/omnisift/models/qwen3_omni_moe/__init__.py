"""Qwen3-Omni-MoE: the adapter, synthetic layouts (`synthetic`) and tiny random-weight fixtures (`fixtures`)."""

from .adapter import TOKEN_IDS, Qwen3OmniMoeAdapter

__all__ = ["Qwen3OmniMoeAdapter", "TOKEN_IDS"]
