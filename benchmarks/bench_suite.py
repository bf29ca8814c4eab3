"""The one wrapper behind the benchmark scripts beside it: each runs `omnisift bench --suite <name>` (see
`omnisift.benchmarking` for the method) with JSON results written to benchmarks/results/ and figures to
benchmarks/figures/; extra command-line arguments pass through (e.g. --quick, --threads 1, --repeats 5)."""

from __future__ import annotations

import sys
from pathlib import Path

from omnisift.benchmarking.cli import main

HERE = Path(__file__).resolve().parent


def run_suite(suite: str) -> int:
    """Run `suite` into this folder's results/ and figures/, with the script's own arguments after ours."""
    defaults = ["--suite", suite, "--out", str(HERE / "results"), "--figures", str(HERE / "figures")]
    return main(defaults + sys.argv[1:])
