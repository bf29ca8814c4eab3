"""Prefill suite: latency, peak memory and decode speed of a 7B-shaped thinker slice at several retains.

Each clip length is measured in its own `prefill_worker` process; this module runs them, adds the ratios
to full tokens and the extrapolation to the 28 layers of the 7B model, and merges the results per clip.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .figures import plot_prefill
from .results import machine_info, save_suite

__all__ = ["prefill_suite"]

logger = logging.getLogger(__name__)


def _extrapolate(row: dict[str, Any], layers: int, target_layers: int = 28) -> dict[str, float]:
    per_layer = statistics.mean(row["layer_s"]) if row["layer_s"] else 0.0
    rest = row["prefill_s"] - sum(row["layer_s"])
    return {
        "per_layer_s": per_layer,
        "outside_layers_s": rest,
        "prefill_s_28": rest + target_layers * per_layer,
        "peak_mb_28": row["peak_mb"] + (target_layers - layers) * row["kv_mb_per_layer"],
        "kv_cache_mb_28": target_layers * row["kv_mb_per_layer"],
        "logits_all_positions_mb": row["tokens_after"] * 151936 * 2 / 2**20,
    }


def prefill_suite(
    out: Path,
    *,
    quick: bool = False,
    layers: int | None = None,
    threads: int = 2,
    dtype: str = "bfloat16",
    repeats: int | None = None,
    clips: Sequence[int] | None = None,
    worker_timeout_s: float = 580.0,
    figures: Path | None = None,
) -> dict[str, Any]:
    """Prefill latency, peak memory and decode speed of a 7B-shaped thinker slice at several retains.

    Results accumulate in `out/prefill.json` per clip length: running a subset of `clips` replaces those
    clips and keeps the others (so the long clip can run in its own invocation).
    """
    layers = layers or (1 if quick else 2)
    repeats = repeats or (1 if quick else 2)
    clips = list(clips or ([5] if quick else [30, 60, 120]))
    retains = [1.0, 0.25] if quick else [1.0, 0.5, 0.35, 0.25]
    start = time.perf_counter()
    clip_results, failures = [], []
    for seconds in clips:
        spec = {
            "seconds": seconds,
            "tokens_per_grid": 252,
            "layers": layers,
            "retains": retains,
            "threads": threads,
            "dtype": dtype,
            "decode_steps": 3 if quick else 6,
            "repeats": repeats,
        }
        logger.info("prefill worker: %s", spec)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "omnisift.benchmarking.prefill_worker", json.dumps(spec)],
                capture_output=True,
                text=True,
                timeout=worker_timeout_s,
            )
        except subprocess.TimeoutExpired:
            failures.append({"seconds": seconds, "error": f"timed out after {worker_timeout_s:.0f} s"})
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            failures.append({"seconds": seconds, "error": proc.stderr[-2000:]})
            continue
        result = json.loads(lines[-1])
        full = result["rows"][0]
        for row in result["rows"]:
            row["extrapolated"] = _extrapolate(row, layers)
            row["prefill_vs_full"] = row["prefill_s"] / full["prefill_s"]
            row["peak_vs_full"] = row["peak_mb"] / full["peak_mb"] if full["peak_mb"] > 0 else None
            row["prefill_28_vs_full"] = (
                row["extrapolated"]["prefill_s_28"] / _extrapolate(full, layers)["prefill_s_28"]
            )
            row["peak_28_vs_full"] = (
                row["extrapolated"]["peak_mb_28"] / _extrapolate(full, layers)["peak_mb_28"]
            )
            if row["decode_tokens_per_s"] and full["decode_tokens_per_s"]:
                row["decode_vs_full"] = row["decode_tokens_per_s"] / full["decode_tokens_per_s"]
            logger.info(
                "prefill %3ds retain %.2f: %6d tokens, %7.2f s (%.2fx), peak %7.0f MB (%.2fx), decode %.2f tok/s",
                seconds,
                row["retain"],
                row["tokens_after"],
                row["prefill_s"],
                row["prefill_vs_full"],
                row["peak_mb"],
                row["peak_vs_full"] or float("nan"),
                row["decode_tokens_per_s"] or float("nan"),
            )
        clip_results.append(result)
    previous = out / "prefill.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        same_setup = (
            old.get("setup", {}).get("layers") == layers and old.get("setup", {}).get("dtype") == dtype
        )
        done = {c["seconds"] for c in clip_results}
        if same_setup:
            clip_results += [c for c in old.get("clips", []) if c["seconds"] not in done]
            clip_results.sort(key=lambda c: c["seconds"])
    result = {
        "suite": "prefill",
        "machine": machine_info(threads),
        "setup": {
            "model": "Qwen2.5-Omni thinker, 7B text shape (hidden 3584, 28 heads, 4 kv heads, head dim 128, "
            f"intermediate 18944, vocab 151936), {layers} decoder layer(s), random weights, tiny encoders",
            "dtype": dtype,
            "layers": layers,
            "repeats": repeats,
            "attention": "sdpa",
            "tokens_per_grid": 252,
            "fps": 2.0,
            "retains": retains,
            "path": "thinker.model.language_model(inputs_embeds, position_ids, attention_mask, DynamicCache): "
            "full = all tokens, retain < 1 = select_tokens + compress, then the compact clip (what attach's "
            "hooks run; selection + compression inside the timing)",
            "timing": "wall seconds of the prefill call (min over round-robin repeats); prefill_cpu_s is the "
            "process CPU time of the same run",
            "peak_memory": "VmHWM - VmRSS around the prefill, high-water mark reset via /proc/self/clear_refs; "
            "one subprocess per clip length",
            "extrapolation": "28 layers: time outside the layers + 28 x mean per-layer time; memory + KV cache "
            "of the extra layers; the real thinker's lm_head over every position adds "
            "tokens x 151936 x 2 B of logits (logits_all_positions_mb), not measured here",
        },
        "clips": clip_results,
        "failures": failures,
        "wall_s": time.perf_counter() - start,
    }
    return save_suite(out, "prefill", result, plot_prefill, figures)
