"""Prefill latency, peak memory and decode speed of a Qwen2.5-Omni-7B-shaped thinker slice at retain 1.0/0.5/0.35/0.25 (30/60/120 s clips).

`omnisift bench --suite prefill` through bench_suite.py (results/ and figures/ beside it). Reproduce
benchmarks/RESULTS.md with `.venv/bin/python benchmarks/prefill_memory.py`.
"""

import sys

from bench_suite import run_suite

if __name__ == "__main__":
    sys.exit(run_suite("prefill"))
