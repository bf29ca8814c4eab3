"""Selection time of every registered method at the same budget, next to the v_proj floor.

Thin wrapper around `omnisift bench --suite methods` (see `omnisift.benchmarking` for the method). JSON results go to
benchmarks/results/, figures to benchmarks/figures/; extra arguments are passed through (e.g. --quick,
--threads 1, --repeats 5). Reproduce benchmarks/RESULTS.md with:

    .venv/bin/python benchmarks/methods_selection.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from omnisift.benchmarking.cli import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    defaults = ["--suite", "methods", "--out", str(HERE / "results"), "--figures", str(HERE / "figures")]
    sys.exit(main(defaults + sys.argv[1:]))
