"""The `omnisift bench` subcommand and `python -m omnisift.benchmarking`: arguments only.

Registering the subcommand imports nothing heavy; the suites are imported when a run starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ..cli_errors import run_command
from .runner import SUITES

__all__ = ["register", "main"]


def _description() -> str | None:
    """The suites' summary from the package docstring (the paragraph that lists them)."""
    doc = sys.modules[__package__].__doc__
    return doc.split("\n\n")[1] if doc else None


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", choices=SUITES + ("all",), default="all")
    parser.add_argument("--out", default="bench_results", help="folder for the JSON results")
    parser.add_argument("--figures", help="folder for the PNG figures (default: OUT/figures)")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw the figures from the JSON results in --out"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats (a smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--repeats", type=int, help="timed runs per measurement (selection/methods 3, prefill 2; quick fewer)"
    )
    parser.add_argument("--layers", type=int, help="decoder layers of the prefill model (default 2, quick 1)")
    parser.add_argument(
        "--clips",
        type=int,
        nargs="+",
        help="clip lengths in seconds (selection default 10 20 30 60 120 180 300; prefill default 30 60 120, "
        "its results merge into prefill.json per clip)",
    )
    parser.add_argument(
        "--tokens-per-grid", type=int, nargs="+", help="selection suite grid sizes (default 252 880)"
    )
    parser.add_argument(
        "--max-input-gb", type=float, default=2.0, help="skip selection clips whose embeddings exceed this"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=480.0,
        help="selection suite: skip larger clips after this many s",
    )


def _run_args(args: argparse.Namespace) -> int:
    if args.replot:
        from .figures import replot

        if not replot(args.out, args.figures):
            raise FileNotFoundError(f"no selection/methods/prefill JSON results in {args.out}.")
        return 0
    from .runner import run

    run(
        args.suite,
        args.out,
        quick=args.quick,
        threads=args.threads,
        repeats=args.repeats,
        layers=args.layers,
        max_input_gb=args.max_input_gb,
        time_budget_s=args.time_budget,
        figures=args.figures,
        clips=args.clips,
        tokens_per_grid=args.tokens_per_grid,
    )
    return 0


def register(subparsers: Any) -> None:
    """Add the `bench` subcommand to the `omnisift` command line."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark selection overhead, scaling, prefill speed and memory",
        description=_description(),
    )
    _add_arguments(parser)
    parser.set_defaults(func=_run_args)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m omnisift.benchmarking` and the scripts in benchmarks/ (which pass their defaults first)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m omnisift.benchmarking", description=_description())
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command(_run_args, args, parser.prog)
