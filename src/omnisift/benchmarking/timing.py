"""Side-by-side wall-clock timing: several callables measured round-robin in one run."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["time_side_by_side"]


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
