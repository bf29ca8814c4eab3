"""Peak memory of the demo's measurements, and a demo output free of profiler chatter."""

from __future__ import annotations

import torch

from omnisift.cli import main
from omnisift.measure import TensorMemory, measure

MIB = 2**20


def test_peak_counts_live_tensors_and_subtracts_freed_ones() -> None:
    def work():
        a = torch.ones(MIB, dtype=torch.uint8)
        b = a * 2  # a and b alive: 2 MiB
        del a
        c = torch.empty(MIB // 2, dtype=torch.uint8)  # b and c: 1.5 MiB
        return b, c

    with TensorMemory() as tracker:
        b, c = work()
    assert tracker.peak == 2 * MIB
    assert tracker.current == MIB + MIB // 2
    del b, c
    assert measure(work).peak_bytes == 2 * MIB


def test_views_in_place_results_and_earlier_tensors_are_not_counted() -> None:
    before = torch.zeros(MIB, dtype=torch.uint8)
    with TensorMemory() as tracker:
        view = before.view(1024, 1024).t()
        view.add_(1)
        before.mul_(3)
        total = before.sum(dtype=torch.int64)  # an 8-byte scalar
    assert tracker.peak == 8
    assert int(total) == 3 * MIB


def test_demo_output_has_no_profiler_lines(capfd) -> None:
    """The CPU peak used to come from torch.profiler, whose C++ side prints kineto's `profiler_start`
    lines and an allocator warning straight to the file descriptors, into the demo's table."""
    argv = ["demo", "--seconds", "2", "--max-new-tokens", "1", "--retain", "0.5", "--no-gain", "--no-picture"]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    assert "peak MiB" in out and "retain 0.50" in out
    for noise in ("USDT", "profiler_start", "profiler_stop", "Memory block of unknown size"):
        assert noise not in out + err, f"{noise!r} in the demo's output:\n{out}\n{err}"
    peaks = [
        float(line.split()[-1]) for line in out.splitlines() if line.startswith(("full tokens", "retain"))
    ]
    assert len(peaks) == 2 and all(p > 0 for p in peaks)
