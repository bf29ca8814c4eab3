"""Inner suite: prefill time and peak memory of omnisift / seats / fastv-om at SEATS' budgets, side by side.

One 7B-shaped thinker slice (the prefill suite's, `seven_b_slice_config`) with a few decoder layers runs a
synthetic audio+video clip at full tokens and, per method and R in (0.35, 0.25, 0.10): the pre-LLM
selection and compaction, then the language model with the inner-LLM layer hooks armed (the work
`attach` does at a media prefill, called directly because these embeddings come without media
features). Every row carries the three budgets: input kept fraction, layer-averaged kept fraction and
relative prefill FLOPs. omnisift runs at `budget="layer-avg"`, so its per-modality layer averages equal
SEATS' at the same R.

SEATS' layers (7B: drops before 16/18/20, no audio/video from 23) and FastV's K (2 of 28) are scaled to
the slice's depth: floor(x L / 28), then made strictly increasing inside [1, L - 1] (8 layers: drops
4/5/6, late 7, SEATS' own 8-layer test vector; K = 1). The output says which layers were used.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..api import select_with
from ..compress import compress
from ..config import CompressionConfig
from ..inner import InnerRuntime, PrefillStart, input_accounting
from ..models import find_adapter
from .inputs import DTYPES, HIDDEN_7B, make_clip, make_selector
from .prefill_worker import _reset_peak, _status_kb, seven_b_slice_config
from .results import machine_info, write_json

__all__ = ["inner_suite", "scaled_layers"]

logger = logging.getLogger(__name__)

RETAINS = (0.35, 0.25, 0.10)
METHODS = ("omnisift", "seats", "fastv-om")
_SEVEN_B_LAYERS = 28


def scaled_layers(layers: int) -> dict[str, Any]:
    """SEATS' drop/late layers and FastV's K of the 28-layer 7B, scaled to a `layers`-deep slice."""
    if layers < 5:
        raise ValueError(
            f"the inner suite needs at least 5 decoder layers (SEATS: 3 drops and a late layer), got {layers}."
        )
    picked: list[int] = []
    for layer in (16, 18, 20, 23):
        picked.append(max(picked[-1] + 1 if picked else 1, layer * layers // _SEVEN_B_LAYERS))
    overflow = picked[-1] - (layers - 1)
    if overflow > 0:
        picked = [max(i + 1, p - overflow) for i, p in enumerate(picked)]
    k = max(1, 2 * layers // _SEVEN_B_LAYERS)
    return {"drop_layers": picked[:3], "late_layer": picked[3], "k": k}


def inner_suite(
    out: Path,
    *,
    quick: bool = False,
    layers: int | None = None,
    seconds: float | None = None,
    tokens_per_grid: int | None = None,
    repeats: int | None = None,
    dtype: str = "bfloat16",
) -> dict[str, Any]:
    """Measure the rows (full tokens first) and write `out/inner.json`."""
    layers = layers or 8
    seconds = seconds or (2.0 if quick else 4.0)
    tokens_per_grid = tokens_per_grid or (64 if quick else 252)
    repeats = repeats or 1
    torch_dtype = DTYPES[dtype]
    scaled = scaled_layers(layers)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        import transformers

        from ..models.qwen2_5_omni import Qwen25OmniAdapter

        config = seven_b_slice_config(layers)
        model = (
            getattr(transformers, Qwen25OmniAdapter.thinker_class)
            ._from_config(config, attn_implementation="sdpa", dtype=torch_dtype)
            .eval()
        )
    adapter = find_adapter(model)
    language_model = adapter.language_model
    selector = make_selector(HIDDEN_7B, torch_dtype)
    batch = make_clip(seconds, tokens_per_grid, HIDDEN_7B, torch_dtype)
    configs: list[tuple[str, float | None, CompressionConfig | None]] = [("full", None, None)]
    for retain in RETAINS:
        configs.append(
            ("omnisift", retain, CompressionConfig(retain=retain, budget="layer-avg", selector=selector))
        )
        seats = {"drop_layers": scaled["drop_layers"], "late_layer": scaled["late_layer"]}
        configs.append(
            ("seats", retain, CompressionConfig(method="seats", retain=retain, method_params=seats))
        )
        configs.append(
            (
                "fastv-om",
                retain,
                CompressionConfig(method="fastv-om", retain=retain, method_params={"k": scaled["k"]}),
            )
        )
    runtimes: dict[str, InnerRuntime] = {}
    for _, _, config in configs:
        if config is not None:
            config.method.prepare(adapter)

    def prefill(config: CompressionConfig | None) -> tuple[float, Any]:
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache(config=model.config.text_config)
        t0 = time.perf_counter()
        if config is None:
            language_model(
                inputs_embeds=batch.inputs_embeds,
                position_ids=batch.position_ids,
                attention_mask=batch.attention_mask,
                past_key_values=cache,
                use_cache=True,
            )
            return time.perf_counter() - t0, None
        config.check()
        result = select_with(
            config.method,
            config.budget_settings,
            batch.inputs_embeds,
            batch.input_ids,
            batch.position_ids,
            batch.attention_mask,
            batch.token_ids,
        )
        compact = compress(result.keep, result.inputs_embeds, batch.position_ids, batch.attention_mask)
        stats = input_accounting(result.stats(), adapter)
        name = config.method_name
        if name != "omnisift":
            runtime = runtimes.get(name)
            if runtime is None or runtime.method is not config.method:
                if runtime is not None:
                    runtime.remove()
                runtime = runtimes[name] = InnerRuntime(language_model, config.method, adapter)
            source = compact.source_index
            index, present = source.clamp(min=0), source >= 0
            rows = torch.arange(source.shape[0]).unsqueeze(1)
            runtime.begin(
                PrefillStart(
                    source=source,
                    is_video=result.layout.is_video[rows, index] & present,
                    is_audio=result.layout.is_audio[rows, index] & present,
                    positions=compact.position_ids[-3:],
                    mask=compact.attention_mask,
                    pair=config.method.retention(config.retain),
                    samples=stats,
                    publish=lambda *_: None,
                )
            )
        language_model(
            inputs_embeds=compact.inputs_embeds,
            position_ids=compact.position_ids,
            attention_mask=compact.attention_mask,
            past_key_values=cache,
            use_cache=True,
        )
        return time.perf_counter() - t0, stats[0]

    with torch.inference_mode():
        prefill(None)  # warm-up: kernel selection, first touch of the weights
    rows: list[dict[str, Any]] = []
    for name, retain, config in configs:
        runs = []
        for _ in range(repeats):
            gc.collect()
            exact = _reset_peak()
            before = _status_kb()
            with torch.inference_mode():
                seconds_taken, sample = prefill(config)
            runs.append((seconds_taken, (_status_kb()["VmHWM"] - before["VmRSS"]) / 1024, sample, exact))
        best = min(runs, key=lambda r: r[0])
        sample = best[2]
        row: dict[str, Any] = {
            "method": name,
            "retain": retain,
            "prefill_s": best[0],
            "peak_mb": max(r[1] for r in runs),
            "peak_exact_reset": best[3],
            "tokens": int(batch.input_ids.shape[1]),
        }
        if sample is None:
            row |= {
                "input_kept": 1.0,
                "layer_avg_kept": 1.0,
                "prefill_flops_ratio": 1.0,
                "tokens_at_input": row["tokens"],
            }
        else:
            media = sample.video_before + sample.audio_before
            row |= {
                "tokens_at_input": sample.length_after,
                "input_kept": sample.retained,
                "input_kept_video": sample.video_after / sample.video_before,
                "input_kept_audio": sample.audio_after / sample.audio_before,
                "layer_avg_kept": (
                    sample.layer_avg_kept_video * sample.video_before
                    + sample.layer_avg_kept_audio * sample.audio_before
                )
                / media,
                "layer_avg_kept_video": sample.layer_avg_kept_video,
                "layer_avg_kept_audio": sample.layer_avg_kept_audio,
                "prefill_flops_ratio": sample.prefill_flops_ratio,
            }
        rows.append(row)
        logger.info("inner %s R=%s: %.2f s, %.0f MB", name, retain, row["prefill_s"], row["peak_mb"])
    for runtime in runtimes.values():
        runtime.remove()
    full = rows[0]
    for row in rows:
        row["prefill_vs_full"] = row["prefill_s"] / full["prefill_s"]
        row["peak_vs_full"] = row["peak_mb"] / full["peak_mb"] if full["peak_mb"] > 0 else None
    result = {
        "suite": "inner",
        "machine": machine_info(),
        "setup": {
            "model": f"Qwen2.5-Omni thinker, 7B text shape, {layers} decoder layers, random weights, tiny encoders",
            "dtype": dtype,
            "clip_seconds": seconds,
            "tokens_per_grid": tokens_per_grid,
            "repeats": repeats,
            "layers_scaled_from_7b": scaled,
            "notes": (
                f"SEATS' 7B layers (drops 16/18/20, late 23) and FastV's K=2 scaled to {layers} layers: drops "
                f"{scaled['drop_layers']}, late {scaled['late_layer']}, K {scaled['k']}. omnisift at "
                "budget='layer-avg' (SEATS' per-modality pair at the input, random-init selector). seats' Stage I "
                "weighs every token 1 (no encoder ran). Peak memory: VmHWM - VmRSS around the prefill."
            ),
        },
        "rows": rows,
        "wall_s": time.perf_counter() - start,
    }
    write_json(out / "inner.json", result)
    return result
