"""`omnisift bench`: progress per suite, and (slow) the prefill worker really compresses."""

from __future__ import annotations

import logging

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
