"""SEATS Stage I's attention statistic, recorded from the stock encoders' last blocks while they run.

For each token: the attention it receives inside its 2-second window, at the last block of its
encoder: per head softmax(q k^T / sqrt(d)) over the window, mean over heads, sum over queries.
Recomputed from the block's own q/k projections (and rotary tables for vision), so it does not depend
on the encoder's attention implementation.

- Vision: windows of two temporal grids (2 h w pre-merge patches) in the encoder's own patch order
  (Qwen2.5-Omni reorders patches into spatial windows; the merge groups of 2x2 patches stay
  contiguous), averaged over each merge group, then put back in merged-token order.
- Audio: windows of 2 s of encoder frames (100 on Qwen2.5-Omni) per audio input, then pooled to the
  token rate as the encoder pools (the adapter's `AudioAttention.pool`).

One model call can encode images and videos separately, and transformers 5.23's `generate()` runs the
encoders before the prefill: each encoder call's statistics are kept until the next selection takes
the ones whose token count matches the batch's video (or audio) tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..layout import Layout

if TYPE_CHECKING:
    from ..models.base import ModelAdapter

__all__ = ["EncoderAttentionRecorder", "window_received_attention"]

_KEEP_CALLS = 8


def window_received_attention(
    queries: torch.Tensor, keys: torch.Tensor, scaling: float, window: int
) -> torch.Tensor:
    """[L] attention each row receives inside consecutive windows of `window` rows (the last may be shorter).

    Args:
        queries, keys: [L, H, d].
    """
    out = []
    for start in range(0, queries.shape[0], window):
        q = queries[start : start + window].transpose(0, 1).float()
        k = keys[start : start + window].transpose(0, 1).float()
        probs = (torch.matmul(q, k.transpose(1, 2)) * scaling).softmax(-1)
        out.append(probs.mean(0).sum(0))
    return torch.cat(out) if out else queries.new_zeros(0, dtype=torch.float32)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x.float() * cos.unsqueeze(-2).float() + rotated.float() * sin.unsqueeze(-2).float()


def _fit(stats: torch.Tensor, per_row: torch.Tensor) -> torch.Tensor | None:
    """`stats` laid on rows holding `per_row` tokens each, or None when they do not fit. Beam search and
    `num_return_sequences` repeat each sample after its media were encoded: then every sample's segment is
    repeated for its copies (rows come in blocks of equal copies)."""
    count = int(per_row.sum())
    if stats.numel() == count:
        return stats
    if stats.numel() == 0 or count % stats.numel():
        return None
    copies = count // stats.numel()
    rows = per_row.tolist()
    if len(rows) % copies or any(len(set(rows[i : i + copies])) != 1 for i in range(0, len(rows), copies)):
        return None
    parts, offset = [], 0
    for i in range(0, len(rows), copies):
        segment = stats[offset : offset + rows[i]]
        parts.extend([segment] * copies)
        offset += rows[i]
    return torch.cat(parts) if offset == stats.numel() else None


class EncoderAttentionRecorder:
    """Hooks on the last block of the vision and audio encoders; `take(layout)` hands out the statistics."""

    def __init__(self, adapter: ModelAdapter) -> None:
        self.vision_calls: list[torch.Tensor] = []
        self.audio_calls: list[torch.Tensor] = []
        self._handles: list[Any] = []
        self._grid: torch.Tensor | None = None
        self._lens: torch.Tensor | None = None
        self.vision = self.audio = None
        try:
            self.vision = adapter.vision_attention()
        except NotImplementedError:
            self.vision = None
        try:
            self.audio = adapter.audio_attention()
        except NotImplementedError:
            self.audio = None
        if self.vision is not None:
            self._handles += [
                self.vision.encoder.register_forward_pre_hook(self._on_vision_encoder, with_kwargs=True),
                self.vision.attention.register_forward_pre_hook(self._on_vision_attention, with_kwargs=True),
            ]
        if self.audio is not None:
            self._window_tokens = round(2 * adapter.audio_tokens_per_second)
            self._handles += [
                self.audio.encoder.register_forward_pre_hook(self._on_audio_encoder, with_kwargs=True),
                self.audio.attention.register_forward_pre_hook(self._on_audio_attention, with_kwargs=True),
            ]

    @classmethod
    def for_adapter(cls, adapter: ModelAdapter) -> EncoderAttentionRecorder:
        return cls(adapter)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # -- vision -----------------------------------------------------------------------------------------

    def _on_vision_encoder(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)

    @torch.no_grad()
    def _on_vision_attention(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        rotary = kwargs.get("position_embeddings")
        if hidden is None or rotary is None or self._grid is None:
            return
        queries, keys = self.vision.project(module, hidden)
        queries, keys = _rope(queries, *rotary), _rope(keys, *rotary)
        unit = self.vision.merge_unit
        stats, offset = [], 0
        for t, h, w in self._grid.tolist():
            patches = t * h * w
            received = window_received_attention(
                queries[offset : offset + patches], keys[offset : offset + patches], module.scaling, 2 * h * w
            )
            stats.append(received.view(-1, unit).mean(1))
            offset += patches
        reordered = torch.cat(stats)
        order = self.vision.window_index(self._grid).to(reordered.device)
        merged = torch.empty_like(reordered)
        merged[order] = reordered
        self._remember(self.vision_calls, merged)

    # -- audio ------------------------------------------------------------------------------------------

    def _on_audio_encoder(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._lens = kwargs.get("feature_lens", args[1] if len(args) > 1 else None)

    @torch.no_grad()
    def _on_audio_attention(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        if hidden is None:
            return
        hidden = hidden.reshape(-1, hidden.shape[-1])
        frames = self.audio.frames_per_input(self._lens) if self._lens is not None else [hidden.shape[0]]
        if sum(frames) != hidden.shape[0]:
            return  # a layout this version does not describe: Stage I then weighs audio uniformly (logged)
        heads = module.num_heads
        queries = module.q_proj(hidden).reshape(hidden.shape[0], heads, -1)
        keys = module.k_proj(hidden).reshape(hidden.shape[0], heads, -1)
        scaling = float(getattr(module, "scaling", queries.shape[-1] ** -0.5))
        stats, offset = [], 0
        for count in frames:
            tokens = self.audio.pool(torch.zeros(count)).numel()
            per_token = max(1, round(count / tokens)) if tokens else 1
            received = window_received_attention(
                queries[offset : offset + count],
                keys[offset : offset + count],
                scaling,
                self._window_tokens * per_token,
            )
            stats.append(self.audio.pool(received))
            offset += count
        self._remember(self.audio_calls, torch.cat(stats))

    # -- hand-out ---------------------------------------------------------------------------------------

    @staticmethod
    def _remember(calls: list[torch.Tensor], stats: torch.Tensor) -> None:
        calls.append(stats)
        del calls[:-_KEEP_CALLS]

    def take(self, layout: Layout) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """[B, N] statistics of the batch's video and audio tokens (None where no encoder call matches)."""
        out = []
        for calls, mask in ((self.vision_calls, layout.is_video), (self.audio_calls, layout.is_audio)):
            per_row = mask.sum(1)
            count = int(per_row.sum())
            found = None
            for i in range(len(calls) - 1, -1, -1):
                found = _fit(calls[i], per_row) if count else None
                if found is not None:
                    calls.pop(i)
                    break
            if found is None:
                out.append(None)
                continue
            full = torch.zeros(mask.numel(), dtype=torch.float32, device=layout.device)
            full[torch.nonzero(mask.reshape(-1)).squeeze(1)] = found.to(layout.device)
            out.append(full.view_as(mask))
        return out[0], out[1]
