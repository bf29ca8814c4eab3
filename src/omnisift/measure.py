"""Time and peak memory of one call, on CUDA or CPU, for the demo and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Measurement", "measure"]


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_bytes: int
    """Peak of memory allocated during the call above what was allocated before it."""
    result: Any = None


def _cpu_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Peak net allocation over the call, from the profiler's per-op allocation records."""
    import os

    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler's start/stop chatter off stderr
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage != 0), key=lambda e: e.time_range.start
    )
    running = peak = 0
    for event in events:
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return result, peak


def measure(fn: Callable[[], Any], device: torch.device | str = "cpu", memory: bool = True) -> Measurement:
    """Run `fn` once; wall time (synchronized on CUDA) and peak memory above the starting level."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = fn()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        return Measurement(seconds, torch.cuda.max_memory_allocated(device) - base, result)
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    if not memory:
        return Measurement(seconds, 0, result)
    _, peak = _cpu_peak(fn)
    return Measurement(seconds, peak, result)
