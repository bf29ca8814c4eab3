"""Selection overhead and scaling: keep_mask vs the v_proj floor vs a literal per-group loop (10-300 s clips, 252/880 tokens per grid, fp32/bf16).

`omnisift bench --suite selection` through bench_suite.py (results/ and figures/ beside it). Reproduce
benchmarks/RESULTS.md with `.venv/bin/python benchmarks/selection_overhead.py`.
"""

import sys

from bench_suite import run_suite

if __name__ == "__main__":
    sys.exit(run_suite("selection"))
