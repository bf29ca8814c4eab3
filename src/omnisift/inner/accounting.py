"""How much of the LLM's work a run kept: layer-averaged kept fractions and relative prefill FLOPs.

FLOPs follow SEATS' convention: the LLM's decoder layers only (no encoders, no lm_head), one
multiply-add counted as one FLOP, and attention as 2 S^2 (heads x head_dim) per layer, not halved for
causality. Per layer and S tokens: S D (H + 2 H_kv) d_h (q, k, v) + S H d_h D (o) + 3 S D I (gated MLP;
for mixture-of-experts layers I is the routed experts' width times experts per token plus any shared
expert) + 2 S^2 H d_h. The ratio compares the run's layers, each at its own length, with every layer at
the full, unpruned length.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..compress import SampleStats

__all__ = [
    "LLMDims",
    "layer_flops",
    "prefill_flops_ratio",
    "layer_average",
    "input_accounting",
    "stats_fields",
    "layer_weighted",
    "mean_flops_ratio",
]


@dataclass(frozen=True)
class LLMDims:
    """The sizes of one decoder layer that the FLOPs count needs."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    mlp_width: int
    layers: int

    @classmethod
    def from_config(cls, config: Any) -> LLMDims:
        heads = int(config.num_attention_heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        experts = getattr(config, "num_experts_per_tok", None)
        if experts and getattr(config, "moe_intermediate_size", None):
            width = int(config.moe_intermediate_size) * int(experts)
            width += int(getattr(config, "shared_expert_intermediate_size", 0) or 0)
        else:
            width = int(config.intermediate_size)
        return cls(
            hidden=int(config.hidden_size),
            heads=heads,
            kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=head_dim,
            mlp_width=width,
            layers=int(config.num_hidden_layers),
        )


def layer_flops(tokens: float, dims: LLMDims) -> float:
    """FLOPs of one decoder layer on `tokens` tokens (MAD = 1, attention not halved)."""
    inner = dims.heads * dims.head_dim
    projections = tokens * dims.hidden * (2 * inner + 2 * dims.kv_heads * dims.head_dim)
    mlp = 3 * tokens * dims.hidden * dims.mlp_width
    attention = 2 * tokens * tokens * inner
    return projections + mlp + attention


def prefill_flops_ratio(lengths: Sequence[int], full_length: int, dims: LLMDims) -> float:
    """Relative prefill FLOPs of a run whose layer l ran on `lengths[l]` tokens (one entry per layer)."""
    full = layer_flops(full_length, dims) * len(lengths)
    return sum(layer_flops(n, dims) for n in lengths) / full if full else 1.0


def layer_average(counts: Sequence[int], before: int) -> float:
    """Mean over layers of the fraction of a modality's `before` tokens present (1.0 when it has none)."""
    return sum(counts) / (len(counts) * before) if before else 1.0


def input_accounting(samples: list[SampleStats], adapter: Any) -> list[SampleStats]:
    """Stats with layer averages and relative FLOPs of a run whose every layer sees the LLM input (what a
    pre-LLM method does; inner-LLM runs overwrite them when their prefill ends)."""
    dims = LLMDims.from_config(adapter.language_model.config)
    return [
        replace(
            s,
            layer_avg_kept_video=s.video_after / s.video_before if s.video_before else 1.0,
            layer_avg_kept_audio=s.audio_after / s.audio_before if s.audio_before else 1.0,
            prefill_flops_ratio=prefill_flops_ratio([s.length_after], s.length_before, dims),
        )
        for s in samples
    ]


def stats_fields(sample: SampleStats) -> dict[str, float]:
    """The accounting fields of one sample as plain floats (result rows, lmms-eval records, bench rows);
    a sample without them (an uncompressed run) kept every token at every layer."""
    return {
        "layer_avg_kept_video": 1.0 if sample.layer_avg_kept_video is None else sample.layer_avg_kept_video,
        "layer_avg_kept_audio": 1.0 if sample.layer_avg_kept_audio is None else sample.layer_avg_kept_audio,
        "prefill_flops_ratio": 1.0 if sample.prefill_flops_ratio is None else sample.prefill_flops_ratio,
    }


def layer_weighted(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """Layer-averaged kept fraction of audio+video over many samples, weighted by their input media tokens
    (as the input-token kept fraction is). A row is a mapping with `video_before`, `audio_before`,
    `video_after`, `audio_after` and optionally `layer_avg_kept_video` / `layer_avg_kept_audio` (rows
    written before these existed count as pre-LLM: after / before at every layer). None without media."""
    before = kept = 0.0
    for row in rows:
        for modality in ("video", "audio"):
            count = float(row.get(f"{modality}_before", 0))
            average = row.get(f"layer_avg_kept_{modality}")
            if average is None:
                average = float(row.get(f"{modality}_after", 0)) / count if count else 1.0
            before += count
            kept += float(average) * count
    return kept / before if before else None


def mean_flops_ratio(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """Mean relative prefill FLOPs over the rows that carry `prefill_flops_ratio` (None when none does)."""
    values = [float(r["prefill_flops_ratio"]) for r in rows if r.get("prefill_flops_ratio") is not None]
    return sum(values) / len(values) if values else None
