"""One prefill measurement process: a 7B-shaped thinker slice, one clip length, every retain.

Run by `prefill.prefill_suite` as ``python -m omnisift.benchmarking.prefill_worker SPEC_JSON`` so that
each clip starts from a fresh resident-set high-water mark; prints its result as one JSON line.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..api import select_tokens
from ..compress import compress
from .inputs import DTYPES, HIDDEN_7B, make_clip, make_selector

M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc

__all__ = ["seven_b_slice_config", "run_worker"]


def seven_b_slice_config(num_layers: int, vocab_size: int = 151936) -> Any:
    """Thinker config with the Qwen2.5-Omni-7B text shape, `num_layers` decoder layers and tiny encoders."""
    from ..models.qwen2_5_omni.fixtures import tiny_thinker_config

    config = tiny_thinker_config(hidden_size=HIDDEN_7B, num_layers=num_layers, vocab_size=vocab_size)
    text = config.text_config
    text.intermediate_size = 18944
    text.num_attention_heads = 28
    text.num_key_value_heads = 4
    text.head_dim = 128
    text.rope_parameters = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}
    return config


def _status_kb() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"^{k}:\s+(\d+)", text, re.M).group(1)) for k in ("VmRSS", "VmHWM")}


def _return_freed_memory() -> None:
    """Hand memory freed by earlier runs back to the OS, so the next run's RSS high-water mark counts
    its own allocations (glibc otherwise reuses the freed heap and a later, smaller run reads ~0 MB)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)  # fixed threshold: large tensors are mapped and unmapped
    libc.malloc_trim(0)


def _reset_peak() -> bool:
    _return_freed_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One clip length, every retain: runs in its own process (see `prefill_suite`)."""
    import transformers
    from transformers.cache_utils import DynamicCache

    from ..models.qwen2_5_omni import Qwen25OmniAdapter

    torch.set_num_threads(spec["threads"])
    dtype = DTYPES[spec["dtype"]]
    t0 = time.perf_counter()
    config = seven_b_slice_config(spec["layers"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = (
            getattr(transformers, Qwen25OmniAdapter.thinker_class)
            ._from_config(config, attn_implementation="sdpa", dtype=dtype)
            .eval()
        )
    build_s = time.perf_counter() - t0
    selector = make_selector(HIDDEN_7B, dtype)
    layers = list(model.model.language_model.layers)
    layer_times: list[float] = []
    marks: dict[int, float] = {}

    def pre(module, args, idx):
        marks[idx] = time.perf_counter()

    def post(module, args, output, idx):
        layer_times.append(time.perf_counter() - marks[idx])

    hooks = []
    for i, layer in enumerate(layers):
        hooks.append(layer.register_forward_pre_hook(lambda m, a, i=i: pre(m, a, i)))
        hooks.append(layer.register_forward_hook(lambda m, a, o, i=i: post(m, a, o, i)))

    language_model = model.model.language_model

    def run_language_model(inputs, cache):
        return language_model(
            inputs_embeds=inputs.inputs_embeds,
            position_ids=inputs.position_ids,
            attention_mask=inputs.attention_mask,
            past_key_values=cache,
            use_cache=True,
        )

    def prefill(batch, cache, retain: float):
        """The language model on the full clip, or selection + compression then the compact clip (the
        work attach's hooks do; called here directly because these embeddings come without media
        features, which the hooks take as nothing to compress). Returns the output, the mask decode
        continues from, the selection seconds and the stats."""
        if retain >= 1.0:
            return run_language_model(batch, cache), batch.attention_mask, 0.0, None
        start = time.perf_counter()
        result = select_tokens(**batch.as_kwargs(), retain=retain, selector=selector)
        compact = compress(result.keep, result.inputs_embeds, batch.position_ids, batch.attention_mask)
        select_s = time.perf_counter() - start
        return run_language_model(compact, cache), compact.attention_mask, select_s, result.stats()[0]

    # Warm-up on a short clip (kernel selection, first-touch of the weights), full and compressed.
    warm = make_clip(4, spec["tokens_per_grid"], HIDDEN_7B, dtype)
    with torch.inference_mode():
        prefill(warm, DynamicCache(config=model.config.text_config), 1.0)
        prefill(warm, DynamicCache(config=model.config.text_config), 0.25)
    batch = make_clip(spec["seconds"], spec["tokens_per_grid"], HIDDEN_7B, dtype)
    text_id, steps = 100, spec["decode_steps"]
    next_pos = int(batch.position_ids.max()) + 1

    def measure(retain: float) -> dict[str, Any]:
        cache = DynamicCache(config=model.config.text_config)
        layer_times.clear()
        gc.collect()
        exact_peak = _reset_peak()
        before = _status_kb()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with torch.inference_mode():
            cpu0, start = time.process_time(), time.perf_counter()
            out, mask, select_s, sample = prefill(batch, cache, retain)
            prefill_s, prefill_cpu_s = time.perf_counter() - start, time.process_time() - cpu0
        peak_kb = _status_kb()["VmHWM"] - before["VmRSS"]
        per_layer = list(layer_times)
        kv_len = cache.get_seq_length()
        stats = sample.as_dict() if sample is not None else None
        del out
        # Greedy decode on the cache the prefill left; lm_head on the last position only.
        step_s = []
        token = torch.full((1, 1), text_id, dtype=torch.long)
        with torch.inference_mode():
            for step in range(steps):
                mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], dim=1)
                pos = torch.full((3, 1, 1), next_pos + step, dtype=torch.long)
                t = time.perf_counter()
                hidden = model.model(
                    input_ids=token,
                    position_ids=pos,
                    attention_mask=mask,
                    past_key_values=cache,
                    use_cache=True,
                ).last_hidden_state
                token = model.lm_head(hidden[:, -1:]).argmax(-1)
                step_s.append(time.perf_counter() - t)
        timed = step_s[1:] if len(step_s) > 1 else step_s
        kv_bytes_per_layer = kv_len * 2 * config.text_config.num_key_value_heads * 128 * dtype.itemsize
        del cache
        gc.collect()
        return {
            "retain": retain,
            "tokens_before": int(batch.input_ids.shape[1]),
            "tokens_after": int(kv_len),
            "stats": stats,
            "prefill_s": prefill_s,
            "prefill_cpu_s": prefill_cpu_s,
            "select_s": select_s,
            "layer_s": per_layer,
            "peak_mb": peak_kb / 1024,
            "peak_exact_reset": exact_peak,
            "kv_mb_per_layer": kv_bytes_per_layer / 2**20,
            "decode_step_s": step_s,
            "decode_tokens_per_s": len(timed) / sum(timed) if timed else None,
            "load_average_1m": load,
        }

    # Round-robin repeats (every retain once per round) so that load drift hits all alike; per retain the
    # fastest round is kept (timing noise on a shared CPU only adds time), all rounds are recorded.
    rounds: dict[float, list[dict[str, Any]]] = {r: [] for r in spec["retains"]}
    for _ in range(spec["repeats"]):
        for retain in spec["retains"]:
            rounds[retain].append(measure(retain))
    rows = []
    for runs in rounds.values():
        best = dict(min(runs, key=lambda r: r["prefill_s"]))
        best["peak_mb"] = max(r["peak_mb"] for r in runs)
        best["decode_tokens_per_s"] = max(r["decode_tokens_per_s"] or 0.0 for r in runs) or None
        best["rounds"] = [
            {
                k: r[k]
                for k in ("prefill_s", "prefill_cpu_s", "peak_mb", "decode_tokens_per_s", "load_average_1m")
            }
            for r in runs
        ]
        rows.append(best)
    for hook in hooks:
        hook.remove()
    return {
        "seconds": spec["seconds"],
        "build_s": build_s,
        "weights_gb": sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9,
        "rows": rows,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(run_worker(json.loads(sys.argv[1]))) + "\n")
    sys.stdout.flush()
