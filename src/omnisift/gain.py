"""The prefill gain on a 7B-shaped thinker, small enough for the demo (seconds, not minutes).

The tiny demo model cannot show the gain: its decoder layers are so small that selecting tokens costs
about as much as the layers it saves. What the tokens cost grows with the LLM, so this runs the same clip
through a thinker with the Qwen2.5-Omni-7B text shape (hidden 3584, 28 heads, MLP 18944) but few
decoder layers, tiny encoders, a small vocabulary and random weights, at full tokens and at each retain,
through the same hooks (`attach`) as the demo.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .attach import attach
from .config import CompressionConfig

__all__ = ["GainRow", "GainReport", "seven_b_shaped_thinker", "measure_gain", "format_gain", "WHY_TINY"]

logger = logging.getLogger(__name__)

WHY_TINY = (
    "why: the tiny model's decoder layers are so small that selecting tokens costs about what they save; "
    "on a 7B-shaped layer each dropped token saves far more than its selection costs."
)
HIDDEN_7B = 3584
FULL_LAYERS = 28
"""Decoder layers of Qwen2.5-Omni-7B's thinker."""
_VOCAB = 2048
"""The 7B slice never embeds ids (the demo hands it embeddings) and scores one position: a small vocabulary
keeps 2 GB of embedding table out of memory without changing the layers' cost."""


@dataclass
class GainRow:
    setting: str
    retain: float
    tokens: int
    prefill_s: float
    cpu_s: float
    """CPU seconds of the process (all threads): steadier than wall time on a shared machine."""
    layers_cpu_s: float
    """CPU seconds inside the decoder layers: the part that grows with the number of layers."""

    def cpu_s_at(self, layers: int, measured_layers: int) -> float:
        """CPU seconds with `layers` decoder layers: the rest as measured, each layer as measured."""
        return self.cpu_s - self.layers_cpu_s + self.layers_cpu_s * layers / measured_layers


@dataclass
class GainReport:
    layers: int
    tokens_per_grid: int
    rows: list[GainRow]

    def ratio(self, row: GainRow) -> float:
        """Prefill wall time of `row` over full tokens'."""
        return row.prefill_s / self.rows[0].prefill_s


def seven_b_shaped_thinker(layers: int = 1, dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    """A random-weight Qwen2.5-Omni thinker with `layers` decoder layers of the 7B text shape."""
    import transformers

    from .benchmarking.prefill_worker import seven_b_slice_config

    config = seven_b_slice_config(layers)
    config.text_config.vocab_size = _VOCAB
    config.text_config.pad_token_id = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        thinker = transformers.Qwen2_5OmniThinkerForConditionalGeneration._from_config(
            config, attn_implementation="sdpa", dtype=dtype
        )
    return thinker.eval()


def measure_gain(
    clip: str | Path,
    retains: list[float],
    *,
    layers: int = 1,
    max_pixels: int = 224 * 224,
    prompt: str = "What happens in this video, and what do you hear?",
) -> GainReport:
    """Prefill seconds of `clip` at full tokens and at each retain on `seven_b_shaped_thinker(layers)`.

    Frames are processed at up to `max_pixels` (224 x 224: 64 video tokens per grid). Each setting is
    timed once, after one untimed warm-up prefill at the smallest retain.
    """
    from .benchmarking.inputs import make_selector
    from .inputs import Protocol, effective_protocol, encode, load_video
    from .media import SamplingConfig
    from .models.qwen2_5_omni import fixtures

    thinker = seven_b_shaped_thinker(layers)
    selector = make_selector(HIDDEN_7B, torch.float32)
    processor = fixtures.tiny_processor()
    sampling = SamplingConfig(min_pixels=28 * 28 * 4, max_pixels=max_pixels)
    protocol = effective_protocol(Protocol(sampling=sampling), processor=processor)
    inputs = encode(processor, load_video(clip, protocol), prompt, protocol)
    ids = inputs["input_ids"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        text = torch.randn(*ids.shape, HIDDEN_7B) * 0.02  # media positions are overwritten by the encoders
    grid = inputs["video_grid_thw"][0]
    per_grid = int(grid[1] * grid[2]) // 4

    inside: list[float] = []
    hooks = _cpu_time_of_layers(thinker, inside)

    def prefill() -> None:
        with torch.inference_mode():
            thinker(**inputs, inputs_embeds=text, use_cache=False, logits_to_keep=1)

    rows = []
    try:
        with attach(thinker, CompressionConfig(retain=min(retains), selector=selector)):
            prefill()  # warm-up (kernels, hooks) at the cheapest setting
        for retain in [1.0, *retains]:
            handle = (
                attach(thinker, CompressionConfig(retain=retain, selector=selector)) if retain < 1 else None
            )
            inside.clear()
            try:
                start, cpu = time.perf_counter(), time.process_time()
                prefill()
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
                tokens = handle.last_stats[0].length_after if handle is not None else int(ids.shape[1])
            finally:
                if handle is not None:
                    handle.remove()
            label = "full tokens" if retain >= 1 else f"retain {retain:.2f}"
            rows.append(GainRow(label, retain, tokens, seconds, cpu_seconds, sum(inside)))
            logger.info("7B-shaped prefill, %s: %d tokens, %.2f s", label, tokens, seconds)
    finally:
        for hook in hooks:
            hook.remove()
    return GainReport(layers=layers, tokens_per_grid=per_grid, rows=rows)


def _cpu_time_of_layers(thinker: nn.Module, inside: list[float]) -> list:
    """Hooks adding each decoder layer's CPU seconds to `inside`."""
    from .models import find_adapter

    started: list[float] = []
    hooks = []
    for layer in find_adapter(thinker).language_model.layers:
        hooks.append(layer.register_forward_pre_hook(lambda *_: started.append(time.process_time())))
        hooks.append(
            layer.register_forward_hook(lambda *_: inside.append(time.process_time() - started.pop()))
        )
    return hooks


def format_gain(report: GainReport) -> str:
    """A plain-text table of the measurement, with the one line saying why the tiny model cannot show it."""
    full = report.rows[0]
    lines = [
        f"prefill on a 7B-shaped thinker ({report.layers} decoder layer(s) of Qwen2.5-Omni-7B's shape, random "
        f"weights, {report.tokens_per_grid} video tokens per grid); CPU seconds, and as with all "
        f"{FULL_LAYERS} layers (the rest as measured, each layer as measured):",
        f"{'setting':<13} {'tokens':>7} {'wall s':>7} {'CPU s':>7} {'vs full':>8} "
        f"{f'{FULL_LAYERS} layers':>10} {'vs full':>8}",
    ]
    full_28 = full.cpu_s_at(FULL_LAYERS, report.layers)
    for row in report.rows:
        at_28 = row.cpu_s_at(FULL_LAYERS, report.layers)
        lines.append(
            f"{row.setting:<13} {row.tokens:>7} {row.prefill_s:>7.2f} {row.cpu_s:>7.2f} "
            f"{row.cpu_s / full.cpu_s:>7.2f}x {at_28:>10.1f} {at_28 / full_28:>7.2f}x"
        )
    lines.append(WHY_TINY)
    return "\n".join(lines)
