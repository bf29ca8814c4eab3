"""Run one suite or all of them into an output folder (JSON results, figures)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._extras import require
from ..output_paths import check_output_folder

__all__ = ["SUITES", "run"]

logger = logging.getLogger(__name__)

SUITES = ("selection", "prefill", "methods", "inner")
"""`all` runs the first three; `inner` (minutes on a CPU) runs when named."""


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
    _check_sizes(
        threads=threads, repeats=repeats, layers=layers, clips=clips, tokens_per_grid=tokens_per_grid
    )
    for name, value in (("max_input_gb", max_input_gb), ("time_budget_s", time_budget_s)):
        if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"{name} must be a positive number, got {value!r}.")
    check_output_folder(out, "--out")
    if figures is not None:
        check_output_folder(figures, "--figures")
    require("matplotlib", "bench")  # before minutes of measuring, not after
    import torch

    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig = Path(figures) if figures is not None else out / "figures"
    results: dict[str, Any] = {}
    chosen = [name for name in ("selection", "methods", "prefill") if suite in (name, "all")]
    chosen += ["inner"] if suite == "inner" else []
    progress = _Progress(chosen, quick)
    if suite in ("selection", "all"):
        from .selection import selection_suite

        progress.start("selection")
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

        progress.start("methods")
        results["methods"] = methods_suite(out, quick=quick, repeats=repeats, figures=fig)
    if suite in ("prefill", "all"):
        from .prefill import prefill_suite

        progress.start("prefill")
        results["prefill"] = prefill_suite(
            out, quick=quick, layers=layers, threads=threads, repeats=repeats, clips=clips, figures=fig
        )
    if suite == "inner":
        from .inner import inner_suite
        from .summary import inner

        progress.start("inner")
        results["inner"] = inner_suite(out, quick=quick, layers=layers, repeats=repeats)
        logger.info("inner suite:\n%s", inner(results["inner"]))
    progress.finish(out, fig)
    return results


class _Progress:
    """One log line as each suite starts and when all are done, with the seconds spent so far."""

    def __init__(self, suites: list[str], quick: bool) -> None:
        self.suites, self.quick = suites, quick
        self.begin = self.last = time.perf_counter()
        self.current: str | None = None

    def _close(self) -> None:
        if self.current is not None:
            now = time.perf_counter()
            logger.info("bench: %s done in %.0f s", self.current, now - self.last)
            self.last = now

    def start(self, name: str) -> None:
        self._close()
        self.current = name
        position = self.suites.index(name) + 1
        mode = " (quick)" if self.quick else ""
        logger.info("bench: suite %d/%d: %s%s ...", position, len(self.suites), name, mode)

    def finish(self, out: Path, figures: Path) -> None:
        self._close()
        logger.info(
            "bench: all done in %.0f s; results in %s, figures in %s",
            time.perf_counter() - self.begin,
            out,
            figures,
        )


def _check_sizes(**settings: int | Sequence[int] | None) -> None:
    """Raise naming the setting when a count or size is below 1 (a run of 0 repeats measures nothing)."""
    for name, value in settings.items():
        if value is None:
            continue
        values = [value] if isinstance(value, int) else list(value)
        flag = "--" + name.replace("_", "-")
        if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise ValueError(
                f"{name} ({flag}) must be a whole number of 1 or more (each, for a list), got {value!r}."
            )
