"""Token dropping inside the LLM (SEATS, FastV, FastV-om): budgets, scoring, rules and the layer hooks."""

from .accounting import (
    LLMDims,
    input_accounting,
    layer_average,
    layer_weighted,
    mean_flops_ratio,
    prefill_flops_ratio,
    stats_fields,
)
from .method import InnerLLMMethod, StageTokens
from .runtime import InnerRuntime, PrefillStart, source_positions
from .schedule import SEATS_PAIRS, block_schedule, fastv_ratio, retention_pair

__all__ = [
    "SEATS_PAIRS",
    "InnerLLMMethod",
    "InnerRuntime",
    "LLMDims",
    "PrefillStart",
    "StageTokens",
    "block_schedule",
    "fastv_ratio",
    "input_accounting",
    "source_positions",
    "layer_average",
    "layer_weighted",
    "mean_flops_ratio",
    "stats_fields",
    "prefill_flops_ratio",
    "retention_pair",
]
