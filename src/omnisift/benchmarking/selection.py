"""Selection suite: `keep_mask` vs the literal per-group loop vs the `v_proj` floor on growing clips."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..api import keep_mask
from ..models.qwen2_5_omni import TOKEN_IDS
from ..testing.reference import literal_keep_mask
from .figures import plot_selection
from .inputs import DTYPES, HIDDEN_7B, cast_batch, clip_tokens, make_clip, make_selector
from .results import machine_info, save_suite
from .timing import time_side_by_side

__all__ = ["selection_suite", "fit_per_chunk"]

logger = logging.getLogger(__name__)


def selection_suite(
    out: Path,
    *,
    quick: bool = False,
    repeats: int | None = None,
    hidden: int = HIDDEN_7B,
    max_input_gb: float = 2.0,
    time_budget_s: float = 480.0,
    device: str = "cpu",
    figures: Path | None = None,
    clips: Sequence[int] | None = None,
    tokens_per_grid: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Time `keep_mask`, the literal per-group loop and the `v_proj` floor on growing clips."""
    seconds_list = list(clips or ([10, 20] if quick else [10, 20, 30, 60, 120, 180, 300]))
    grid_sizes = list(tokens_per_grid or ([252] if quick else [252, 880]))
    dtypes = ["float32", "bfloat16"]
    repeats = repeats or (1 if quick else 3)
    ids = TOKEN_IDS  # the clips are laid out as Qwen2.5-Omni lays them (make_clip)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    selectors = {d: make_selector(hidden, DTYPES[d], device) for d in dtypes}
    # The two reference points of docs/design.md#paper-numbers first (so a time budget never skips them), then by size.
    priority = [(20, 252), (60, 880)]
    configs = [sp for sp in priority if sp[0] in seconds_list and sp[1] in grid_sizes]
    configs += sorted(
        ((s, p) for s in seconds_list for p in grid_sizes if (s, p) not in configs),
        key=lambda sp: clip_tokens(*sp),
    )
    for seconds, per_grid in configs:
        base = None
        for dname in dtypes:
            dtype = DTYPES[dname]
            tokens = clip_tokens(seconds, per_grid)
            size_gb = tokens * hidden * dtype.itemsize / 1e9
            entry = {"seconds": seconds, "tokens_per_grid": per_grid, "dtype": dname, "input_gb": size_gb}
            if size_gb > max_input_gb:
                skipped.append(entry | {"reason": f"input {size_gb:.2f} GB > --max-input-gb {max_input_gb}"})
                continue
            if time.perf_counter() - start > time_budget_s:
                skipped.append(entry | {"reason": f"time budget {time_budget_s:.0f} s spent"})
                continue
            if base is None:
                base = make_clip(seconds, per_grid, hidden, torch.float32, device)
            batch = base if dtype == torch.float32 else cast_batch(base, dtype)
            selector = selectors[dname]
            kwargs = dict(batch.as_kwargs())
            kwargs.pop("attention_mask")  # batch 1 without padding, like the published code's input
            with torch.inference_mode():
                keep = keep_mask(**kwargs, selector=selector)
                is_video = batch.input_ids == ids.video
                kept_video = batch.inputs_embeds[keep & is_video].contiguous()
                parity = None
                if dtype == torch.float32:
                    literal = literal_keep_mask(**kwargs, selector=selector)
                    parity = bool(torch.equal(literal, keep))
                fns = {
                    "ours": lambda kw=kwargs, s=selector: keep_mask(**kw, selector=s),
                    "literal": lambda kw=kwargs, s=selector: literal_keep_mask(**kw, selector=s),
                    "floor": lambda v=kept_video, s=selector: s.v_proj(v),
                }
                timing = time_side_by_side(fns, repeats, device=torch.device(device))
            grids = int(torch.unique(batch.position_ids[0, 0][is_video[0]]).numel())
            row = entry | {
                "tokens": int(batch.input_ids.shape[1]),
                "video_tokens": int(is_video.sum()),
                "audio_tokens": int((batch.input_ids == ids.audio).sum()),
                "grids": grids,
                "chunks": (grids + 1) // 2,
                "kept_video_tokens": int(kept_video.shape[0]),
                "kept_tokens": int(keep.sum()),
                "parity_with_literal": parity,
                "timing": timing,
                "ours_ms": timing["ours"]["median_s"] * 1e3,
                "literal_ms": timing["literal"]["median_s"] * 1e3,
                "floor_ms": timing["floor"]["median_s"] * 1e3,
                "ours_min_ms": timing["ours"]["min_s"] * 1e3,
                "literal_min_ms": timing["literal"]["min_s"] * 1e3,
                "floor_min_ms": timing["floor"]["min_s"] * 1e3,
            }
            row["ours_over_floor"] = row["ours_ms"] / row["floor_ms"]
            row["literal_over_ours"] = row["literal_ms"] / row["ours_ms"]
            rows.append(row)
            logger.info(
                "selection %3ds %4d/grid %-8s ours %8.1f ms  literal %8.1f ms  floor %7.1f ms  (%.2fx floor)",
                seconds,
                per_grid,
                dname,
                row["ours_ms"],
                row["literal_ms"],
                row["floor_ms"],
                row["ours_over_floor"],
            )
            del batch, kwargs, keep, kept_video, fns
            gc.collect()
        del base
        gc.collect()
    # Fitted on the fastest run of each point: load from other processes only adds time.
    fits = {
        f"{impl}/{d}": fit_per_chunk([r for r in rows if r["dtype"] == d], f"{impl}_min_ms")
        for impl in ("ours", "literal", "floor")
        for d in dtypes
    }
    result = {
        "suite": "selection",
        "machine": machine_info(),
        "setup": {
            "hidden": hidden,
            "video_drop": 0.7,
            "audio_drop": 0.3,
            "fps": 2.0,
            "repeats": repeats,
            "warmup": 1,
            "selector": "random init (seed 0), eval, same dtype as the inputs",
            "floor": "selector.v_proj(kept video tokens), tokens pre-gathered contiguous",
            "device": device,
        },
        "rows": rows,
        "skipped": skipped,
        "fits": fits,
        "wall_s": time.perf_counter() - start,
    }
    return save_suite(out, "selection", result, plot_selection, figures)


def fit_per_chunk(rows: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    """Relative least squares ``t = a + b * tokens + c * chunks`` over rows of both grid sizes.

    Tokens and chunks are proportional at a fixed grid size, so the fit needs at least two grid sizes;
    ``c`` is the per-chunk cost (ms per chunk), ``b`` the per-token cost (us per token).
    """
    if len({r["tokens_per_grid"] for r in rows}) < 2 or len(rows) < 4:
        return None
    t = torch.tensor([r[key] for r in rows], dtype=torch.float64)
    design = torch.tensor([[1.0, r["tokens"], r["chunks"]] for r in rows], dtype=torch.float64)
    weight = 1.0 / t
    coef = torch.linalg.lstsq(design * weight[:, None], (t * weight)[:, None]).solution[:, 0]
    pred = design @ coef
    at_60 = [r for r in rows if r["seconds"] == 60 and r["tokens_per_grid"] == 880]
    share = None
    if at_60:
        r = at_60[0]
        share = float(coef[2] * r["chunks"] / r[key])
    return {
        "a_ms": float(coef[0]),
        "b_us_per_token": float(coef[1] * 1e3),
        "c_ms_per_chunk": float(coef[2]),
        "max_rel_residual": float(((pred - t).abs() / t).max()),
        "chunk_term_share_at_60s_880": share,
    }
