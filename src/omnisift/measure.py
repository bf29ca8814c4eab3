"""Time and peak memory of one call, on CUDA or CPU, for the demo.

CUDA: the caching allocator's own peak counter. CPU has no such counter; the torch profiler's memory
records would give one, but starting the profiler prints its own lines on stderr (kineto's
``profiler_start``/``profiler_stop`` and a CPU-allocator warning) that no Python setting silences.
So on CPU the tensors created by each operator are tracked instead, through a dispatch mode, with
weak references to their storages telling when they are freed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["Measurement", "measure", "TensorMemory"]


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_bytes: int
    """Peak of memory allocated during the call above what was allocated before it."""
    result: Any = None


class TensorMemory(TorchDispatchMode):
    """Bytes of tensor storage created under this mode and still alive, and their peak.

    Counts every storage an operator returns that none of its inputs already held (views and in-place
    results share an input's storage and are not counted again), until it is freed. Scratch memory
    inside one kernel is not seen: the peak is that of the tensors held between operators.
    """

    def __init__(self, device_type: str = "cpu") -> None:
        super().__init__()
        self.device_type = device_type
        self.current = 0
        self.peak = 0
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}

    def _storages(self, tree: Any) -> list[torch.UntypedStorage]:
        return [
            t.untyped_storage()
            for t in tree_leaves(tree)
            if isinstance(t, torch.Tensor) and t.layout == torch.strided and t.device.type == self.device_type
        ]

    def _collect_freed(self) -> None:
        for key in [key for key, (ref, _) in self._live.items() if ref.expired()]:
            self.current -= self._live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._collect_freed()
        held = {s.data_ptr() for s in self._storages((args, kwargs))}
        for storage in self._storages(out):
            key, size = storage.data_ptr(), storage.nbytes()
            if size and key not in held and key not in self._live:
                self._live[key] = (StorageWeakRef(storage), size)
                self.current += size
        self.peak = max(self.peak, self.current)
        return out


def measure(fn: Callable[[], Any], device: torch.device | str = "cpu", memory: bool = True) -> Measurement:
    """Run `fn` once timed; on CPU with `memory`, once more under `TensorMemory` for the peak."""
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
    with TensorMemory(device.type) as tracker:
        fn()
    return Measurement(seconds, tracker.peak, result)
