"""The markdown tables of benchmarks/RESULTS.md, rendered from the suites' JSON results (no measurement)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["summarize", "selection", "methods", "prefill", "machine", "inner"]


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine(data: dict) -> str:
    m = data["machine"]
    load = m.get("load_average")
    load_text = ", ".join(f"{x:.1f}" for x in load) if load else "n/a"
    return (
        f"{m['cpu']} ({m['logical_cpus']} logical CPUs, flags {' '.join(m['cpu_flags'])}), "
        f"torch {m['torch']} with {m['torch_threads']} threads, transformers {m['transformers']}, "
        f"GPU: {m['cuda'] or 'none'}; load average at the end of the run: {load_text}"
    )


def _ms(row: dict, key: str) -> str:
    low = row.get(f"{key}_min_ms", row["timing"][key]["min_s"] * 1e3)
    return f"{row[f'{key}_ms']:.1f} ({low:.1f})"


def selection(data: dict) -> str:
    lines = [
        f"Machine: {machine(data)}; wall time of the run {data['wall_s']:.0f} s.",
        "",
        "Times are median (min) of the round-robin runs, in ms; ratios use the medians.",
        "",
        "| clip | tokens/grid | dtype | chunks | tokens | kept video | keep_mask | literal loop | "
        "v_proj floor | keep_mask / floor | literal / keep_mask | parity |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(data["rows"], key=lambda r: (r["tokens_per_grid"], r["dtype"], r["seconds"])):
        parity = {True: "equal", False: "DIFFERS", None: "-"}[r["parity_with_literal"]]
        lines.append(
            f"| {r['seconds']} s | {r['tokens_per_grid']} | {r['dtype']} | {r['chunks']} | {r['tokens']} | "
            f"{r['kept_video_tokens']} | {_ms(r, 'ours')} | {_ms(r, 'literal')} | {_ms(r, 'floor')} | "
            f"{r['ours_over_floor']:.2f} | {r['literal_over_ours']:.2f} | {parity} |"
        )
    if data["skipped"]:
        lines += [
            "",
            "Skipped: "
            + "; ".join(
                f"{s['seconds']} s / {s['tokens_per_grid']} / {s['dtype']} ({s['reason']})"
                for s in data["skipped"]
            )
            + ".",
        ]
    lines += [
        "",
        "Fit `t = a + b * tokens + c * chunks` on the fastest run of each point (relative least squares over "
        "both grid sizes):",
        "",
        "| implementation | dtype | a ms | b us/token | c ms/chunk | chunk term share at 60 s / 880 | max rel. residual |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, fit in data["fits"].items():
        if not fit:
            continue
        impl, dtype = key.split("/")
        share = fit["chunk_term_share_at_60s_880"]
        lines.append(
            f"| {impl} | {dtype} | {fit['a_ms']:.1f} | {fit['b_us_per_token']:.3f} | {fit['c_ms_per_chunk']:.2f} | "
            f"{'-' if share is None else f'{100 * share:.0f} %'} | {100 * fit['max_rel_residual']:.0f} % |"
        )
    return "\n".join(lines)


def methods(data: dict) -> str:
    lines = [f"Machine: {machine(data)}.", ""]
    for table in data["tables"]:
        lines += [
            f"{table['seconds']} s clip, {table['tokens_per_grid']} tokens/grid, {table['dtype']} "
            f"({table['tokens']} tokens):",
            "",
            "| method | median ms | x floor | video kept | audio kept | retained |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in table["rows"]:
            if "error" in r:
                lines.append(f"| {r['method']} | error: {r['error'][:80]} | | | | |")
                continue
            kept = (
                f"{r['video_kept']} | {r['audio_kept']} | {r['retained']:.3f}"
                if "video_kept" in r
                else " | | "
            )
            lines.append(f"| {r['method']} | {r['median_ms']:.1f} | {r['over_floor']:.2f} | {kept} |")
        lines.append("")
    return "\n".join(lines)


def prefill(data: dict) -> str:
    setup = data["setup"]
    lines = [
        f"Machine: {machine(data)}.",
        f"Model: {setup['model']}; {setup['dtype']}; {setup.get('repeats', 1)} round-robin repeat(s), fastest kept.",
        "",
        "| clip | retain | tokens | prefill s | x full | CPU s | selection s | peak MB | x full | "
        "28-layer prefill s (extrap.) | x full | 28-layer peak MB (extrap.) | x full | decode tok/s | x full |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for clip in data["clips"]:
        for r in clip["rows"]:
            ex = r["extrapolated"]
            cpu = r.get("prefill_cpu_s")
            lines.append(
                f"| {clip['seconds']} s | {r['retain']:.2f} | {r['tokens_after']} | {r['prefill_s']:.2f} | "
                f"{r['prefill_vs_full']:.2f} | {'-' if cpu is None else f'{cpu:.1f}'} | {r['select_s']:.2f} | "
                f"{r['peak_mb']:.0f} | {r['peak_vs_full']:.2f} | {ex['prefill_s_28']:.1f} | "
                f"{r['prefill_28_vs_full']:.2f} | {ex['peak_mb_28']:.0f} | {r['peak_28_vs_full']:.2f} | "
                f"{r['decode_tokens_per_s']:.2f} | {r.get('decode_vs_full', 1.0):.2f} |"
            )
    if data.get("failures"):
        lines += [
            "",
            "Failures: " + "; ".join(f"{f['seconds']} s: {f['error'][-200:]}" for f in data["failures"]),
        ]
    return "\n".join(lines)


def summarize(folder: Path) -> str:
    """Every table whose JSON result is in `folder`, as one markdown section per suite."""
    parts = []
    for name, render in (
        ("selection", selection),
        ("methods", methods),
        ("prefill", prefill),
        ("inner", inner),
    ):
        data = _load(folder, name)
        if data:
            parts.append(f"### {name}\n\n{render(data)}\n")
    return "\n".join(parts)


def inner(data: dict) -> str:
    """The inner suite's rows: prefill time and peak memory next to the three budgets of each run."""
    setup = data["setup"]
    lines = [
        f"Machine: {machine(data)}.",
        f"Model: {setup['model']}; {setup['dtype']}; clip {setup['clip_seconds']:g} s at "
        f"{setup['tokens_per_grid']} tokens/grid; {setup['repeats']} repeat(s), fastest kept.",
        setup["notes"],
        "",
        "| method | R | input kept (v / a) | layer-avg kept (v / a) | prefill FLOPs | prefill s | x full "
        "| peak MB | x full |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        retain = "-" if r["retain"] is None else f"{r['retain']:.2f}"
        if "input_kept_video" in r:
            kept = (
                f"{r['input_kept']:.3f} ({r['input_kept_video']:.2f} / {r['input_kept_audio']:.2f}) | "
                f"{r['layer_avg_kept']:.3f} ({r['layer_avg_kept_video']:.2f} / {r['layer_avg_kept_audio']:.2f})"
            )
        else:
            kept = "1.000 | 1.000"
        peak = "-" if r["peak_vs_full"] is None else f"{r['peak_vs_full']:.2f}"
        lines.append(
            f"| {r['method']} | {retain} | {kept} | {r['prefill_flops_ratio']:.3f} | {r['prefill_s']:.2f} | "
            f"{r['prefill_vs_full']:.2f} | {r['peak_mb']:.0f} | {peak} |"
        )
    return "\n".join(lines)
