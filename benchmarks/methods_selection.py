"""Selection time of every registered method at the same budget, next to the v_proj floor.

`omnisift bench --suite methods` through bench_suite.py (results/ and figures/ beside it). Reproduce
benchmarks/RESULTS.md with `.venv/bin/python benchmarks/methods_selection.py`.
"""

import sys

from bench_suite import run_suite

if __name__ == "__main__":
    sys.exit(run_suite("methods"))
