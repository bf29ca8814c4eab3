"""Selection overhead and scaling: keep_mask vs the v_proj floor vs a literal per-group loop (10-300 s clips, 252/880 tokens per grid, fp32/bf16).

Thin wrapper around `omnisift bench --suite selection` (see `omnisift.benchmarking` for the method). JSON results go to
benchmarks/results/, figures to benchmarks/figures/; extra arguments are passed through (e.g. --quick,
--threads 1, --repeats 5). Reproduce benchmarks/RESULTS.md with:

    .venv/bin/python benchmarks/selection_overhead.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from omnisift.benchmarking.cli import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    defaults = ["--suite", "selection", "--out", str(HERE / "results"), "--figures", str(HERE / "figures")]
    sys.exit(main(defaults + sys.argv[1:]))
