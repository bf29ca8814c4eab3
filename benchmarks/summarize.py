"""Print the markdown tables of benchmarks/RESULTS.md from the JSON results (no measurement).

    .venv/bin/python benchmarks/summarize.py [RESULTS_DIR ...]

Each folder holds the selection.json / methods.json / prefill.json written by `omnisift bench`; the
tables are rendered by `omnisift.benchmarking.summary`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omnisift.benchmarking.summary import summarize

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    for folder in [Path(f) for f in sys.argv[1:]] or [HERE / "results"]:
        sys.stdout.write(f"## {folder}\n\n{summarize(folder)}\n")
