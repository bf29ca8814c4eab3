"""`omnisift bench`: selection overhead and scaling, prefill speed and memory, every method's selection time.

Three suites, each writing JSON results and matplotlib PNG figures into ``--out`` (every figure shows
quantities measured side by side in the same run, since timings on a shared CPU drift between runs):

- ``selection``: `keep_mask` against the floor (the bare ``selector.v_proj`` matmul of the kept video
  tokens) and against `literal_keep_mask`, a per-group Python loop written here from SPEC 3 the way the
  published code works (a loop per chunk, full-length ``nonzero`` scans, host syncs per chunk), for
  clips of 10-300 s at 252 and 880 tokens per grid, hidden 3584, fp32 and bf16. Timed round-robin
  (median of several runs after a warm-up); a least-squares fit ``t = a + b * tokens + c * chunks``
  over both grid sizes gives the per-chunk term ``c`` of each implementation.
- ``prefill``: latency and peak memory of a random-weight Qwen2.5-Omni thinker of the real 7B text shape
  (hidden 3584, 28 heads, 4 kv heads, intermediate 18944, head dim 128, M-RoPE [16, 24, 24]) cut to a
  few decoder layers, with tiny encoders. Merged inputs (synthetic, laid out like the processor's) go
  through ``thinker.model`` with ``input_ids`` and ``inputs_embeds``, so the real `attach` hooks run:
  full tokens without the hook, retain 0.5 / 0.35 / 0.25 with it. Each clip length runs in its own
  subprocess; peak memory is the resident-set high-water mark (``VmHWM`` of ``/proc/self/status``,
  reset through ``/proc/self/clear_refs`` just before the prefill) minus the resident set at that
  moment, so it counts activations, the KV cache and the selection's temporaries, not the weights.
  Per-layer times (forward hooks) give an extrapolation to the 28 layers of the 7B model. Decode:
  greedy steps on the KV cache the prefill left (``lm_head`` on the last position only).
- ``methods``: every registered method's selection time at the same budget (video_drop 0.7,
  audio_drop 0.3), next to the floor.

Run with ``omnisift bench --suite selection|prefill|methods|all --out DIR [--quick]`` or
``python -m omnisift.bench ...``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .layout import TokenIds
from .models.qwen2_5_omni import TOKEN_IDS as _QWEN25_IDS


def _default_ids() -> TokenIds:
    return _QWEN25_IDS


__all__ = [
    "register",
    "main",
    "run",
    "machine_info",
    "literal_keep_mask",
    "time_side_by_side",
    "selection_suite",
    "prefill_suite",
    "methods_suite",
    "fit_per_chunk",
    "seven_b_slice_config",
    "replot",
]

logger = logging.getLogger(__name__)

HIDDEN_7B = 3584
SUITES = ("selection", "prefill", "methods")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


# ------------------------------------------------------------------------------------------- machine


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """CPU model, core count, torch threads and versions, load average (timings drift with load)."""
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = match.group(1).strip() if match else cpu
        found = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
        flags = [f for f in wanted if found and f in found.group(1).split()]
    except OSError:
        pass
    import transformers

    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
    }
    return info


# -------------------------------------------------------------------------------------------- timing


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_side_by_side(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
) -> dict[str, dict[str, Any]]:
    """Time several callables round-robin (the order rotates each round) so drift hits them alike.

    Returns, per name, the median, min and every run's wall seconds, and the median process CPU seconds.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    _sync(device)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            fns[name]()
            _sync(device)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        n: {
            "median_s": statistics.median(wall[n]),
            "min_s": min(wall[n]),
            "runs_s": wall[n],
            "cpu_median_s": statistics.median(cpu[n]),
        }
        for n in names
    }


# ---------------------------------------------------------------------------------- literal reference


def literal_keep_mask(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    selector: torch.nn.Module,
    video_drop: float = 0.7,
    audio_drop: float = 0.3,
    token_ids: TokenIds | None = None,
) -> torch.Tensor:
    """The SPEC 3 rules run the way the published code runs them: one Python iteration per 2-second group.

    Each group scans the whole sequence with ``nonzero`` to find its grids and its audio window, reads
    sizes and bounds back to the host, and calls the selector on its own anchors and audio. Batch 1 and
    one video only (as the published code); the keep mask equals `keep_mask`'s on such inputs in fp32.
    Kept as a timing baseline, not for use.
    """
    if inputs_embeds.shape[0] != 1:
        raise ValueError("literal_keep_mask handles batch 1 only (like the published code).")
    ids = token_ids or _default_ids()
    x, tok, t = inputs_embeds[0], input_ids[0], position_ids[0, 0]
    keep = torch.ones_like(tok, dtype=torch.bool)
    is_video, is_audio = tok == ids.video, tok == ids.audio
    grid_ts = torch.unique(t[is_video]).tolist()
    max_pos = int(position_ids[:, 0].max().item())
    for g in range(0, len(grid_ts), 2):
        f1 = torch.nonzero(is_video & (t == grid_ts[g])).squeeze(1)
        x1 = x[f1]
        n = f1.numel()
        k = int(n * video_drop)
        if k:
            sims = F.cosine_similarity(x1, x1.mean(0, keepdim=True), dim=-1)
            keep[f1[sims.topk(k).indices]] = False
        f2 = f1[:0]
        if g + 1 < len(grid_ts):
            f2 = torch.nonzero(is_video & (t == grid_ts[g + 1])).squeeze(1)
            if f2.numel() == n and k:
                sims = F.cosine_similarity(x[f2], x1, dim=-1)
                keep[f2[sims.topk(k).indices]] = False
        end = grid_ts[g + 2] if g + 2 < len(grid_ts) else max_pos + 1
        audio = torch.nonzero(is_audio & (t >= grid_ts[g]) & (t < end)).squeeze(1)
        group_video = torch.cat([f1, f2])
        anchors = group_video[keep[group_video]]
        la = audio.numel()
        n_keep = la - int(la * audio_drop)
        if anchors.numel() == 0 or la <= 1 or audio_drop == 0 or n_keep <= 0:
            continue
        scores = selector(x[anchors].unsqueeze(0), x[audio].unsqueeze(0))[0]
        dropped = torch.ones(la, dtype=torch.bool, device=x.device)
        dropped[scores.topk(n_keep).indices] = False
        keep[audio[dropped]] = False
    return keep.unsqueeze(0)


# --------------------------------------------------------------------------------------- selection


def _selector(hidden: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.nn.Module:
    from .selector import VisionGuidedAudioSelector

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return VisionGuidedAudioSelector(hidden).to(device=device, dtype=dtype).eval()


def _clip(seconds: float, tokens_per_grid: int, hidden: int, dtype: torch.dtype, device: str = "cpu"):
    from .synthetic import av_sample, build_batch

    return build_batch([av_sample(seconds, tokens_per_grid)], hidden, dtype=dtype, device=device)


def _clip_tokens(seconds: float, tokens_per_grid: int) -> int:
    """Sequence length of `av_sample(seconds, tokens_per_grid)` at 2 fps (one grid per second)."""
    grids = max(1, round(seconds))
    return grids * tokens_per_grid + round(seconds * 25) + 2 * 16 + 4


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
    from .api import keep_mask

    seconds_list = list(clips or ([10, 20, 60] if quick else [10, 20, 30, 60, 120, 180, 300]))
    grid_sizes = list(tokens_per_grid or [252, 880])
    dtypes = ["float32", "bfloat16"]
    repeats = repeats or (2 if quick else 3)
    ids = _default_ids()
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    selectors = {d: _selector(hidden, _DTYPES[d], device) for d in dtypes}
    # The two reference points of SPEC 5 first (so a time budget never skips them), then by size.
    priority = [(20, 252), (60, 880)]
    configs = [sp for sp in priority if sp[0] in seconds_list and sp[1] in grid_sizes]
    configs += sorted(
        ((s, p) for s in seconds_list for p in grid_sizes if (s, p) not in configs),
        key=lambda sp: _clip_tokens(*sp),
    )
    for seconds, per_grid in configs:
        base = None
        for dname in dtypes:
            dtype = _DTYPES[dname]
            tokens = _clip_tokens(seconds, per_grid)
            size_gb = tokens * hidden * dtype.itemsize / 1e9
            entry = {"seconds": seconds, "tokens_per_grid": per_grid, "dtype": dname, "input_gb": size_gb}
            if size_gb > max_input_gb:
                skipped.append(entry | {"reason": f"input {size_gb:.2f} GB > --max-input-gb {max_input_gb}"})
                continue
            if time.perf_counter() - start > time_budget_s:
                skipped.append(entry | {"reason": f"time budget {time_budget_s:.0f} s spent"})
                continue
            if base is None:
                base = _clip(seconds, per_grid, hidden, torch.float32, device)
            batch = base if dtype == torch.float32 else _cast(base, dtype)
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
    _write_json(out / "selection.json", result)
    _plot_selection(result, figures or out / "figures")
    return result


def _cast(batch: Any, dtype: torch.dtype) -> Any:
    from .synthetic import SyntheticBatch

    return SyntheticBatch(
        batch.input_ids,
        batch.position_ids,
        batch.attention_mask,
        batch.inputs_embeds.to(dtype),
        batch.segments,
    )


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


# ----------------------------------------------------------------------------------------- methods


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
    from .api import select_tokens
    from .methods import METHODS, available_methods

    configs = (
        [(20, 252, "float32")]
        if quick
        else [
            (20, 252, "float32"),
            (20, 252, "bfloat16"),
            (60, 880, "float32"),
            (60, 880, "bfloat16"),
        ]
    )
    repeats = repeats or (2 if quick else 3)
    methods = available_methods()
    if "omnisift" in methods:
        methods = ["omnisift"] + [m for m in methods if m != "omnisift"]
    start = time.perf_counter()
    tables = []
    for seconds, per_grid, dname in configs:
        dtype = _DTYPES[dname]
        batch = _clip(seconds, per_grid, hidden, dtype, device)
        selector = _selector(hidden, dtype, device)
        gen = torch.Generator().manual_seed(1)
        saliency = torch.rand(batch.input_ids.shape, generator=gen).to(device)
        fns: dict[str, Callable[[], Any]] = {}
        rows: dict[str, dict[str, Any]] = {}
        inputs = batch.as_kwargs()
        for name in methods:
            extra = {"audio_saliency": saliency} if METHODS[name].needs_audio_attention else {}

            def call(name=name, extra=extra, kwargs=inputs, selector=selector):
                return select_tokens(**kwargs, method=name, selector=selector, **extra)

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
            kept_video = batch.inputs_embeds[keep & (batch.input_ids == _default_ids().video)].contiguous()
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
    _write_json(out / "methods.json", result)
    _plot_methods(result, figures or out / "figures")
    return result


# ----------------------------------------------------------------------------------------- prefill


def seven_b_slice_config(num_layers: int, vocab_size: int = 151936) -> Any:
    """Thinker config with the Qwen2.5-Omni-7B text shape, `num_layers` decoder layers and tiny encoders."""
    from .tiny import tiny_thinker_config

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


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _prefill_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One clip length, every retain: runs in its own process (see `prefill_suite`)."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration
    from transformers.cache_utils import DynamicCache

    from .attach import CompressionConfig, attach

    torch.set_num_threads(spec["threads"])
    dtype = _DTYPES[spec["dtype"]]
    t0 = time.perf_counter()
    config = seven_b_slice_config(spec["layers"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2_5OmniThinkerForConditionalGeneration._from_config(
            config, attn_implementation="sdpa", dtype=dtype
        ).eval()
    build_s = time.perf_counter() - t0
    selector = _selector(HIDDEN_7B, dtype)
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

    def prefill(batch, cache):
        return model.model(
            input_ids=batch.input_ids,
            inputs_embeds=batch.inputs_embeds,
            position_ids=batch.position_ids,
            attention_mask=batch.attention_mask,
            past_key_values=cache,
            use_cache=True,
        )

    # Warm-up on a short clip (kernel selection, first-touch of the weights), with and without the hook.
    warm = _clip(4, spec["tokens_per_grid"], HIDDEN_7B, dtype)
    with torch.inference_mode():
        prefill(warm, DynamicCache(config=model.config.text_config))
        with attach(model, CompressionConfig(retain=0.25, selector=selector)):
            prefill(warm, DynamicCache(config=model.config.text_config))
    batch = _clip(spec["seconds"], spec["tokens_per_grid"], HIDDEN_7B, dtype)
    text_id, steps = 100, spec["decode_steps"]
    next_pos = int(batch.position_ids.max()) + 1

    def measure(retain: float) -> dict[str, Any]:
        handle = attach(model, CompressionConfig(retain=retain, selector=selector)) if retain < 1.0 else None
        cache = DynamicCache(config=model.config.text_config)
        layer_times.clear()
        gc.collect()
        exact_peak = _reset_peak()
        before = _status_kb()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with torch.inference_mode():
            cpu0, start = time.process_time(), time.perf_counter()
            out = prefill(batch, cache)
            prefill_s, prefill_cpu_s = time.perf_counter() - start, time.process_time() - cpu0
        peak_kb = _status_kb()["VmHWM"] - before["VmRSS"]
        per_layer = list(layer_times)
        kv_len = cache.get_seq_length()
        select_s = handle.last_select_seconds if handle is not None else 0.0
        stats = handle.last_stats[0].as_dict() if handle is not None else None
        del out
        # Greedy decode on the cache the prefill left; lm_head on the last position only.
        step_s = []
        token = torch.full((1, 1), text_id, dtype=torch.long)
        mask = batch.attention_mask
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
        if handle is not None:
            handle.remove()
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
    clips = list(clips or ([10, 20] if quick else [30, 60, 120]))
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
            "decode_steps": 4 if quick else 6,
            "repeats": repeats,
        }
        logger.info("prefill worker: %s", spec)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "omnisift.bench", "--prefill-worker", json.dumps(spec)],
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
            "path": "thinker.model(input_ids, inputs_embeds, position_ids, attention_mask, DynamicCache): "
            "full = stock model, retain < 1 = attach() hooks (selection + compression inside the timing)",
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
    _write_json(out / "prefill.json", result)
    _plot_prefill(result, figures or out / "figures")
    return result


# ----------------------------------------------------------------------------------------- figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log_ticks(axis) -> None:
    """Log axis with plain numbers (10, 20, 50, ...) instead of 2x10^1 style labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(NullFormatter())


def _plot_selection(result: dict[str, Any], folder: Path) -> None:
    rows = result["rows"]
    if not rows:
        return
    folder.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    grid_sizes = sorted({r["tokens_per_grid"] for r in rows})
    dtypes = ["float32", "bfloat16"]
    fig, axes = plt.subplots(len(grid_sizes), 2, figsize=(11, 4.2 * len(grid_sizes)), squeeze=False)
    for i, per_grid in enumerate(grid_sizes):
        for j, dname in enumerate(dtypes):
            ax = axes[i][j]
            sub = sorted(
                (r for r in rows if r["tokens_per_grid"] == per_grid and r["dtype"] == dname),
                key=lambda r: r["chunks"],
            )
            if not sub:
                ax.set_visible(False)
                continue
            x = [r["chunks"] for r in sub]
            for key, label, style in (
                ("literal_ms", "literal per-group loop (published style)", "s--"),
                ("ours_ms", "omnisift keep_mask", "o-"),
                ("floor_ms", "floor: v_proj of kept video", "^:"),
            ):
                ax.plot(x, [r[key] for r in sub], style, label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            _plain_log_ticks(ax.xaxis)
            _plain_log_ticks(ax.yaxis)
            ax.set_xlabel("2-second chunks")
            ax.set_ylabel("ms (median)")
            ax.set_title(f"{per_grid} tokens/grid, {dname}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"Selection time vs clip length (hidden {result['setup']['hidden']}, CPU, 2 threads)")
    fig.tight_layout()
    fig.savefig(folder / "selection_scaling.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for per_grid in grid_sizes:
        for dname in dtypes:
            sub = sorted(
                (r for r in rows if r["tokens_per_grid"] == per_grid and r["dtype"] == dname),
                key=lambda r: r["chunks"],
            )
            if not sub:
                continue
            x = [r["chunks"] for r in sub]
            label = f"{per_grid}/grid {dname}"
            axes[0].plot(x, [r["ours_over_floor"] for r in sub], "o-", label=label)
            axes[1].plot(x, [r["literal_over_ours"] for r in sub], "s-", label=label)
    axes[0].axhline(2.0, color="k", lw=0.8, ls="--", label="target 2x")
    axes[0].set_title("keep_mask / v_proj floor")
    axes[1].axhline(1.0, color="k", lw=0.8, ls="--")
    axes[1].set_title("literal loop / keep_mask (speed-up)")
    for ax in axes:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("2-second chunks")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "selection_ratios.png", dpi=110)
    plt.close(fig)


def _plot_methods(result: dict[str, Any], folder: Path) -> None:
    tables = result["tables"]
    if not tables:
        return
    folder.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    fig, axes = plt.subplots(1, len(tables), figsize=(4.6 * len(tables), 4.8), squeeze=False)
    for ax, table in zip(axes[0], tables, strict=True):
        rows = [r for r in table["rows"] if "median_ms" in r]
        ax.barh([r["method"] for r in rows], [r["median_ms"] for r in rows], color="tab:blue")
        for k, r in enumerate(rows):
            ax.text(r["median_ms"], k, f" {r['over_floor']:.1f}x", va="center", fontsize=7)
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("ms (median); label = x floor")
        ax.set_title(f"{table['seconds']} s, {table['tokens_per_grid']}/grid, {table['dtype']}", fontsize=9)
        ax.invert_yaxis()
    fig.suptitle("Selection time of every registered method at video_drop 0.7 / audio_drop 0.3")
    fig.tight_layout()
    fig.savefig(folder / "methods_selection.png", dpi=110)
    plt.close(fig)


def _plot_prefill(result: dict[str, Any], folder: Path) -> None:
    clips = result["clips"]
    if not clips:
        return
    folder.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for clip in clips:
        rows = clip["rows"]
        retains = [r["retain"] for r in rows]
        label = f"{clip['seconds']} s"
        axes[0].plot(retains, [r["prefill_vs_full"] for r in rows], "o-", label=f"{label} measured")
        axes[0].plot(
            retains, [r["prefill_28_vs_full"] for r in rows], "x--", label=f"{label} 28-layer extrap."
        )
        axes[1].plot(retains, [r["peak_vs_full"] for r in rows], "o-", label=f"{label} measured")
        axes[1].plot(retains, [r["peak_28_vs_full"] for r in rows], "x--", label=f"{label} 28-layer extrap.")
        axes[2].plot(retains, [r["decode_tokens_per_s"] for r in rows], "o-", label=label)
    for ax in axes[:2]:
        ax.plot([0, 1], [0, 1], color="gray", lw=0.6, ls=":")
        ax.axhline(0.35, color="k", lw=0.8, ls="--")
        ax.set_xlabel("retain (fraction of audio+video kept)")
        ax.set_ylim(0, 1.05)
    axes[0].set_title("prefill time / full tokens")
    axes[1].set_title("peak activation memory / full tokens")
    axes[2].set_title(f"decode tokens/s ({result['setup']['model'].split(', ')[-3]})")
    axes[2].set_xlabel("retain")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Prefill of a Qwen2.5-Omni-7B-shaped thinker slice (CPU, bf16, 252 tokens/grid)")
    fig.tight_layout()
    fig.savefig(folder / "prefill.png", dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------- runner


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    logger.info("wrote %s", path)


def run(
    suite: str,
    out: str | Path,
    *,
    quick: bool = False,
    threads: int = 2,
    repeats: int | None = None,
    layers: int | None = None,
    max_input_gb: float = 2.0,
    time_budget_s: float = 480.0,
    figures: str | Path | None = None,
    clips: Sequence[int] | None = None,
    tokens_per_grid: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run one suite (or all) and return its results (JSON under `out`, figures under `figures`,
    by default `out/figures`)."""
    if suite not in SUITES + ("all",):
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES + ('all',))}.")
    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig = Path(figures) if figures is not None else out / "figures"
    results: dict[str, Any] = {}
    if suite in ("selection", "all"):
        results["selection"] = selection_suite(
            out,
            quick=quick,
            repeats=repeats,
            max_input_gb=max_input_gb,
            time_budget_s=time_budget_s,
            figures=fig,
            clips=clips,
            tokens_per_grid=tokens_per_grid,
        )
    if suite in ("methods", "all"):
        results["methods"] = methods_suite(out, quick=quick, repeats=repeats, figures=fig)
    if suite in ("prefill", "all"):
        results["prefill"] = prefill_suite(
            out, quick=quick, layers=layers, threads=threads, repeats=repeats, clips=clips, figures=fig
        )
    return results


def replot(out: str | Path, figures: str | Path | None = None) -> list[Path]:
    """Redraw the figures from the JSON results found in `out` (no measurement)."""
    out = Path(out)
    fig = Path(figures) if figures is not None else out / "figures"
    drawn = []
    for name, plot in (
        ("selection", _plot_selection),
        ("methods", _plot_methods),
        ("prefill", _plot_prefill),
    ):
        path = out / f"{name}.json"
        if path.exists():
            plot(json.loads(path.read_text()), fig)
            drawn.append(path)
    return drawn


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", choices=SUITES + ("all",), default="all")
    parser.add_argument("--out", default="bench_results", help="folder for the JSON results")
    parser.add_argument("--figures", help="folder for the PNG figures (default: OUT/figures)")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw the figures from the JSON results in --out"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats (a smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--repeats", type=int, help="timed runs per measurement (selection/methods 3, prefill 2; quick fewer)"
    )
    parser.add_argument("--layers", type=int, help="decoder layers of the prefill model (default 2, quick 1)")
    parser.add_argument(
        "--clips",
        type=int,
        nargs="+",
        help="clip lengths in seconds (selection default 10 20 30 60 120 180 300; prefill default 30 60 120, "
        "its results merge into prefill.json per clip)",
    )
    parser.add_argument(
        "--tokens-per-grid", type=int, nargs="+", help="selection suite grid sizes (default 252 880)"
    )
    parser.add_argument(
        "--max-input-gb", type=float, default=2.0, help="skip selection clips whose embeddings exceed this"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=480.0,
        help="selection suite: skip larger clips after this many s",
    )


def _run_args(args: argparse.Namespace) -> int:
    if args.replot:
        if not replot(args.out, args.figures):
            raise FileNotFoundError(f"no selection/methods/prefill JSON results in {args.out}.")
        return 0
    run(
        args.suite,
        args.out,
        quick=args.quick,
        threads=args.threads,
        repeats=args.repeats,
        layers=args.layers,
        max_input_gb=args.max_input_gb,
        time_budget_s=args.time_budget,
        figures=args.figures,
        clips=args.clips,
        tokens_per_grid=args.tokens_per_grid,
    )
    return 0


def register(subparsers: Any) -> None:
    """Add the `bench` subcommand to the `omnisift` command line."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark selection overhead, scaling, prefill speed and memory",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    _add_arguments(parser)
    parser.set_defaults(func=_run_args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--prefill-worker"]:
        sys.stdout.write(json.dumps(_prefill_worker(json.loads(argv[1]))) + "\n")
        sys.stdout.flush()
        return 0
    parser = argparse.ArgumentParser(prog="python -m omnisift.bench", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return _run_args(args)


if __name__ == "__main__":
    sys.exit(main())
