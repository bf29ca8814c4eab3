"""`omnisift bench`: progress per suite, and (slow) the prefill worker really compresses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from omnisift.benchmarking.runner import _Progress


def test_progress_names_each_suite_in_the_order_run(caplog, tmp_path) -> None:
    progress = _Progress(["selection", "methods", "prefill"], quick=True)
    with caplog.at_level(logging.INFO, logger="omnisift.benchmarking.runner"):
        for name in ("selection", "methods", "prefill"):
            progress.start(name)
        progress.finish(tmp_path, tmp_path / "figures")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "bench: suite 1/3: selection (quick) ..."
    assert lines[1].startswith("bench: selection done in ")
    assert lines[2] == "bench: suite 2/3: methods (quick) ..."
    assert lines[4] == "bench: suite 3/3: prefill (quick) ..."
    assert lines[5].startswith("bench: prefill done in ")
    assert lines[6].startswith("bench: all done in ") and str(tmp_path) in lines[6]


@pytest.mark.slow
def test_prefill_worker_drops_tokens_at_retain_below_one() -> None:
    from omnisift.benchmarking.prefill_worker import run_worker

    spec = {
        "seconds": 2,
        "tokens_per_grid": 16,
        "layers": 1,
        "retains": [1.0, 0.25],
        "threads": 2,
        "dtype": "bfloat16",
        "decode_steps": 2,
        "repeats": 1,
    }
    full, small = run_worker(spec)["rows"]
    assert full["stats"] is None and small["stats"]["retained"] < 0.3
    assert small["tokens_after"] < full["tokens_after"] == full["tokens_before"]
    assert len(small["decode_step_s"]) == 2


_PEAK_AFTER_A_BIGGER_RUN = """
import torch
from omnisift.benchmarking.prefill_worker import _reset_peak, _status_kb
for _ in range(3):
    big = torch.ones(24 * 2**20 // 4)  # 24 MB, freed: glibc keeps it and hands it to the next allocation
    del big
_reset_peak()
before = _status_kb()["VmRSS"]
small = torch.ones(8 * 2**20 // 4)
print((_status_kb()["VmHWM"] - before) / 1024)
"""


def test_a_runs_peak_memory_counts_its_own_allocations_after_a_bigger_run() -> None:
    """The worker measures runs one after another in one process; main read ~0 MB for a run smaller than
    an earlier one (its tensors reused the freed heap, so the resident set never grew)."""
    import subprocess
    import sys

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_AFTER_A_BIGGER_RUN], capture_output=True, text=True, check=True
    ).stdout
    assert float(out) == pytest.approx(8.0, abs=1.0)


def test_inner_suite_scales_seats_and_fastv_layers_to_the_slice() -> None:
    from omnisift.benchmarking.inner import scaled_layers

    assert scaled_layers(28) == {"drop_layers": [16, 18, 20], "late_layer": 23, "k": 2}
    assert scaled_layers(8) == {"drop_layers": [4, 5, 6], "late_layer": 7, "k": 1}  # SEATS' 8-layer vector
    assert scaled_layers(5) == {"drop_layers": [1, 2, 3], "late_layer": 4, "k": 1}
    with pytest.raises(ValueError, match="at least 5 decoder layers"):
        scaled_layers(4)


@pytest.mark.slow
def test_inner_suite_rows_carry_both_budgets(tmp_path) -> None:
    from omnisift.benchmarking.inner import inner_suite
    from omnisift.benchmarking.summary import inner

    data = inner_suite(tmp_path, quick=True, layers=5)
    rows = {(r["method"], r["retain"]): r for r in data["rows"]}
    assert rows[("full", None)]["prefill_flops_ratio"] == 1.0
    for retain in (0.35, 0.25, 0.10):
        omni, seats, fastv = (rows[(m, retain)] for m in ("omnisift", "seats", "fastv-om"))
        assert omni["input_kept"] == pytest.approx(omni["layer_avg_kept"])  # pre-LLM: kept at every layer
        assert fastv["input_kept"] == 1.0 > fastv["layer_avg_kept"]
        assert seats["input_kept"] > seats["layer_avg_kept"]
        assert omni["layer_avg_kept_video"] == pytest.approx(seats["layer_avg_kept_video"], abs=0.08)
        assert all(r["prefill_s"] > 0 and r["prefill_flops_ratio"] < 1 for r in (omni, seats, fastv))
    assert "| seats | 0.25 |" in inner(data) and "drops [1, 2, 3]" in inner(data)
    full, smallest = rows[("full", None)]["peak_mb"], rows[("omnisift", 0.10)]["peak_mb"]
    assert 1 < smallest < rows[("omnisift", 0.35)]["peak_mb"] < full
