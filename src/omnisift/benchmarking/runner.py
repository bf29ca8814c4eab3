"""Run one suite or all of them into an output folder (JSON results, figures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._extras import require

__all__ = ["SUITES", "run"]

SUITES = ("selection", "prefill", "methods")


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
    require("matplotlib", "bench")  # before minutes of measuring, not after
    import torch

    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig = Path(figures) if figures is not None else out / "figures"
    results: dict[str, Any] = {}
    if suite in ("selection", "all"):
        from .selection import selection_suite

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
        from .methods import methods_suite

        results["methods"] = methods_suite(out, quick=quick, repeats=repeats, figures=fig)
    if suite in ("prefill", "all"):
        from .prefill import prefill_suite

        results["prefill"] = prefill_suite(
            out, quick=quick, layers=layers, threads=threads, repeats=repeats, clips=clips, figures=fig
        )
    return results
