"""Methods suite: every registered method's selection time at the same budget, next to the `v_proj` floor."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from ..api import select_tokens
from ..methods import METHODS, available_methods, shortcuts_for
from .figures import plot_methods
from .inputs import DTYPES, HIDDEN_7B, make_clip, make_selector
from .results import machine_info, save_suite
from .timing import time_side_by_side

__all__ = ["methods_suite"]

logger = logging.getLogger(__name__)


def methods_suite(
    out: Path,
    *,
    quick: bool = False,
    repeats: int | None = None,
    hidden: int = HIDDEN_7B,
    device: str = "cpu",
    figures: Path | None = None,
) -> dict[str, Any]:
    """Selection time of every registered method at the same budget, next to the `v_proj` floor."""
    configs = (
        [(10, 252, "float32")]
        if quick
        else [
            (20, 252, "float32"),
            (20, 252, "bfloat16"),
            (60, 880, "float32"),
            (60, 880, "bfloat16"),
        ]
    )
    repeats = repeats or (1 if quick else 3)
    methods = available_methods()
    if "omnisift" in methods:
        methods = ["omnisift"] + [m for m in methods if m != "omnisift"]
    start = time.perf_counter()
    tables = []
    for seconds, per_grid, dname in configs:
        dtype = DTYPES[dname]
        batch = make_clip(seconds, per_grid, hidden, dtype, device)
        selector = make_selector(hidden, dtype, device)
        gen = torch.Generator().manual_seed(1)
        saliency = torch.rand(batch.input_ids.shape, generator=gen).to(device)
        fns: dict[str, Callable[[], Any]] = {}
        rows: dict[str, dict[str, Any]] = {}
        inputs = batch.as_kwargs()
        for name in methods:
            extra = (
                {"audio_saliency": saliency}
                if "audio_saliency" in {f.name for f in fields(METHODS[name])}
                else {}
            )

            def call(name=name, extra=extra, kwargs=inputs, selector=selector):
                return select_tokens(**kwargs, method=name, **shortcuts_for(name, selector=selector), **extra)

            try:
                with torch.inference_mode():
                    stats = call().stats()[0]
            except Exception as error:  # a baseline being written may fail: record it, go on
                rows[name] = {"method": name, "error": f"{type(error).__name__}: {error}"}
                continue
            fns[name] = call
            rows[name] = {
                "method": name,
                "video_kept": stats.video_after,
                "audio_kept": stats.audio_after,
                "retained": stats.retained,
            }
        with torch.inference_mode():
            keep = select_tokens(**batch.as_kwargs(), selector=selector).keep
            kept_video = batch.inputs_embeds[keep & (batch.input_ids == batch.token_ids.video)].contiguous()
            fns["floor (v_proj)"] = lambda s=selector, v=kept_video: s.v_proj(v)
            timing = time_side_by_side(fns, repeats, device=torch.device(device))
        floor = timing["floor (v_proj)"]["median_s"]
        rows["floor (v_proj)"] = {"method": "floor (v_proj)"}
        for name, row in rows.items():
            if name in timing:
                row |= {
                    "median_ms": timing[name]["median_s"] * 1e3,
                    "runs_ms": [x * 1e3 for x in timing[name]["runs_s"]],
                    "over_floor": timing[name]["median_s"] / floor,
                }
        tables.append(
            {
                "seconds": seconds,
                "tokens_per_grid": per_grid,
                "dtype": dname,
                "tokens": int(batch.input_ids.shape[1]),
                "rows": list(rows.values()),
            }
        )
        logger.info(
            "methods %ds %d/grid %s: %s",
            seconds,
            per_grid,
            dname,
            {n: round(r.get("median_ms", float("nan")), 1) for n, r in rows.items()},
        )
        del batch, fns, inputs
        gc.collect()
    result = {
        "suite": "methods",
        "machine": machine_info(),
        "setup": {
            "hidden": hidden,
            "video_drop": 0.7,
            "audio_drop": 0.3,
            "repeats": repeats,
            "registered": available_methods(),
            "notes": "omnisift-family methods use a random-init selector; methods needing the audio "
            "encoder's attention get a random [B, N] audio_saliency (its own cost is not included)",
        },
        "tables": tables,
        "wall_s": time.perf_counter() - start,
    }
    return save_suite(out, "methods", result, plot_methods, figures)
