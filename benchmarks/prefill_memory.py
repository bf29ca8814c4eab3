"""Prefill latency, peak memory and decode speed of a Qwen2.5-Omni-7B-shaped thinker slice at retain 1.0/0.5/0.35/0.25 (30/60/120 s clips).

Thin wrapper around `omnisift bench --suite prefill` (see `omnisift.benchmarking` for the method). JSON results go to
benchmarks/results/, figures to benchmarks/figures/; extra arguments are passed through (e.g. --quick,
--threads 1, --repeats 5). Reproduce benchmarks/RESULTS.md with:

    .venv/bin/python benchmarks/prefill_memory.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from omnisift.benchmarking.cli import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    defaults = ["--suite", "prefill", "--out", str(HERE / "results"), "--figures", str(HERE / "figures")]
    sys.exit(main(defaults + sys.argv[1:]))
