"""The benchmarks' PNG figures, drawn from the suites' JSON results (matplotlib: the ``bench`` extra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._extras import require

__all__ = ["plot_selection", "plot_methods", "plot_prefill", "replot"]


def _plt():
    matplotlib = require("matplotlib", "bench")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "bench")


def _save(plt, fig, path: Path) -> None:
    """Write one figure at the benchmarks' resolution and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plain_log_ticks(axis) -> None:
    """Log axis with plain numbers (10, 20, 50, ...) instead of 2x10^1 style labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(NullFormatter())


def plot_selection(result: dict[str, Any], folder: Path) -> None:
    """selection_scaling.png (times vs chunks) and selection_ratios.png (x floor, speed-up)."""
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
    _save(plt, fig, folder / "selection_scaling.png")

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
    _save(plt, fig, folder / "selection_ratios.png")


def plot_methods(result: dict[str, Any], folder: Path) -> None:
    """methods_selection.png: one bar chart of selection times per clip setting."""
    tables = result["tables"]
    if not tables:
        return
    folder.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    # At least 7 in wide: the title must fit when a quick run has a single table.
    fig, axes = plt.subplots(1, len(tables), figsize=(max(7.0, 4.6 * len(tables)), 4.8), squeeze=False)
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
    title = "Selection time of every registered method at video_drop 0.7 / audio_drop 0.3"
    fig.suptitle(title if len(tables) > 1 else title.replace(" at ", "\nat "))
    _save(plt, fig, folder / "methods_selection.png")


def plot_prefill(result: dict[str, Any], folder: Path) -> None:
    """prefill.png: prefill time, peak memory and decode speed against retain."""
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
    _save(plt, fig, folder / "prefill.png")


def replot(out: str | Path, figures: str | Path | None = None) -> list[Path]:
    """Redraw the figures from the JSON results found in `out` (no measurement)."""
    out = Path(out)
    fig = Path(figures) if figures is not None else out / "figures"
    drawn = []
    for name, plot in (
        ("selection", plot_selection),
        ("methods", plot_methods),
        ("prefill", plot_prefill),
    ):
        path = out / f"{name}.json"
        if path.exists():
            plot(json.loads(path.read_text()), fig)
            drawn.append(path)
    return drawn
