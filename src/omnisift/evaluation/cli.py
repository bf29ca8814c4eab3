"""`omnisift eval` and `omnisift report` subcommands.

`register(subparsers)` adds both to an argparse parser; each sets `func` (call `args.func(args)`, which
returns an exit code). `python -m omnisift.evaluation eval|report ...` runs them standalone, which is
also the form multi-GPU launchers take:

    accelerate launch --num_processes 8 -m omnisift.evaluation eval --benchmark worldsense \\
        --media-root /data/WorldSense --model /ckpt/OmniSIFT-7B --method omnisift --retain 0.25 \\
        --batch-size 4 --out runs
    torchrun --nproc-per-node 8 -m omnisift.evaluation eval ...      # same arguments
    omnisift report runs                                            # merges every rank's file

Each process reads RANK / WORLD_SIZE (set by both launchers; `--shard/--num-shards` override them),
uses GPU LOCAL_RANK and writes `runs/<run>/<benchmark>/shard-<rank>-of-<world>.jsonl`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .._extras import MissingExtraError
from ..cli_errors import run_command
from ..config import add_compression_arguments, compression_from_args

__all__ = ["add_eval_parser", "add_report_parser", "main", "register"]

logger = logging.getLogger(__name__)


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..protocols import PRESETS
    from .benchmarks import BENCHMARKS

    p = subparsers.add_parser(
        "eval",
        help="run a benchmark (or one shard of it) and write one JSONL row per question",
        description="Evaluate a Qwen2.5-Omni model, compressed or not, on an audio-video benchmark. "
        "Reruns resume; several processes (torchrun / accelerate launch) split the questions.",
    )
    p.add_argument("--benchmark", required=True, help=f"one of: {', '.join(BENCHMARKS)}")
    p.add_argument(
        "--media-root", required=True, type=Path, help="folder the question file's video paths are under"
    )
    p.add_argument(
        "--questions",
        type=Path,
        help="the benchmark's data.jsonl (default: $OMNISIFT_BENCHMARKS/<name>/data.jsonl or <media-root>/data.jsonl)",
    )
    p.add_argument(
        "--model", required=True, help="checkpoint folder, or 'tiny' for the tiny random-weight demo model"
    )
    p.add_argument("--processor", help="processor folder when the model folder has none")
    add_compression_arguments(p.add_argument_group("compression"))
    p.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results)")
    p.add_argument("--run-name", help="run subfolder (default: <model>__<method setting>)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="answer length cap (default: the preset's; omnisift-paper: 1024, the limit the published "
        "answers really had)",
    )
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--skip-missing", action="store_true", help="skip questions whose video is missing")
    p.add_argument("--retry-errors", action="store_true", help="rerun questions that ended in an error row")
    p.add_argument("--shard", type=int, help="this process's shard (default: $RANK or 0)")
    p.add_argument("--num-shards", type=int, help="number of shards (default: $WORLD_SIZE or 1)")
    p.add_argument(
        "--protocol",
        default="omnisift-paper",
        choices=list(PRESETS),
        help="a paper's evaluation protocol (pixels per frame, frame cap, fps, system prompt, answer cap, "
        "unparsable answers); the options below override single settings (default: omnisift-paper)",
    )
    p.add_argument(
        "--system-prompt",
        help="send this system turn (default: the preset's; omnisift-paper: the template's)",
    )
    p.add_argument("--no-audio", action="store_true", help="leave the audio track out")
    p.add_argument("--fps", type=float, help="frame sampling rate (default: the preset's; omnisift-paper: 2)")
    p.add_argument("--max-frames", type=int, help="frame cap (default: the preset's; omnisift-paper: 256)")
    p.add_argument(
        "--max-pixels",
        type=int,
        help="per-frame pixel cap (default: the preset's; omnisift-paper: 256*28*28)",
    )
    p.add_argument("--min-pixels", type=int, help="per-frame pixel floor (default 128*28*28)")
    p.add_argument(
        "--unparsable",
        choices=["wrong", "random"],
        help="what an answer naming no option scores as (default: the preset's; omnisift-paper: wrong)",
    )
    p.add_argument("--device", help="e.g. cuda:0 or cpu (default: cuda:$LOCAL_RANK if available)")
    p.add_argument("--dtype", default="auto", help="bfloat16 | float16 | float32 | auto")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes decoding and encoding the next videos while the model runs (0: in-process)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_eval_command)
    return p


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="merge shards, score and tabulate runs like the paper's Table 1; plot score vs tokens kept",
    )
    p.add_argument("dir", type=Path, help="results folder (the --out of eval)")
    p.add_argument("--figure", type=Path, help="PNG path (default: DIR/report.png)")
    p.add_argument(
        "--judge-url", help="OpenAI-compatible base URL (e.g. http://host:8000/v1) to score video-SALMONN-2"
    )
    p.add_argument("--judge-model", help="model name to send to the judge endpoint")
    p.add_argument(
        "--judge-key-env",
        help="environment variable holding the judge API key (default: OPENAI_API_KEY, sent to https URLs "
        "only; naming it here sends it to --judge-url whatever its scheme)",
    )
    p.add_argument("--judge-workers", type=int, default=4)
    p.add_argument("--paper", action="store_true", help="also print the paper's Table 1 for comparison")
    p.add_argument("--no-details", action="store_true", help="only the main table")
    p.set_defaults(func=run_report_command)
    return p


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` and `report` subcommands to an argparse subparsers object."""
    add_eval_parser(subparsers)
    add_report_parser(subparsers)


def _eval_config(args: argparse.Namespace):
    from ..protocols import preset_protocol
    from .benchmarks import find_questions_file
    from .runner import EvalConfig

    questions = args.questions or find_questions_file(args.benchmark, args.media_root)
    protocol = preset_protocol(
        args.protocol,
        args.benchmark,
        fps=args.fps,
        max_frames=args.max_frames,
        max_pixels=args.max_pixels,
        min_pixels=args.min_pixels,
        system_prompt=args.system_prompt,
        max_new_tokens=args.max_new_tokens,
        unparsable=args.unparsable,
        use_audio=False if args.no_audio else None,
    )
    return EvalConfig(
        benchmark=args.benchmark,
        questions=questions,
        model=args.model,
        out=args.out,
        media_root=args.media_root,
        compression=compression_from_args(args),
        run_name=args.run_name,
        batch_size=args.batch_size,
        limit=args.limit,
        skip_missing=args.skip_missing,
        shard=args.shard,
        num_shards=args.num_shards,
        retry_errors=args.retry_errors,
        protocol=protocol,
        device=args.device,
        dtype=args.dtype,
        processor=args.processor,
        workers=args.workers,
        progress=not args.no_progress,
    )


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_eval_command(args: argparse.Namespace) -> int:
    from .benchmarks import MissingMediaError
    from .results import RunMetaMismatch, merge_rows, read_rows
    from .run_lock import RunLockedError
    from .runner import run_eval
    from .scoring import score_rows

    try:
        config = _eval_config(args)
        outcome = run_eval(config)
    except (
        MissingMediaError,
        MissingExtraError,
        RunMetaMismatch,
        RunLockedError,
        FileNotFoundError,
        ValueError,
    ) as exc:
        return _fail(str(exc))
    rows = merge_rows(read_rows(outcome.bench_dir))
    score = score_rows(outcome.bench_dir.name, rows)
    label = " [tiny model, RANDOM WEIGHTS]" if args.model == "tiny" else ""
    print(
        f"{outcome.bench_dir}: {outcome.written} new rows ({outcome.errors} errors), "
        f"{outcome.already_done} already done, {outcome.skipped_missing} skipped (missing media){label}"
    )
    if score.accuracy is not None:
        print(f"accuracy so far over {score.rows} rows in all shards: {score.accuracy:.1f}%")
    if score.retained is not None:
        print(f"audio+video tokens kept: {100 * score.retained:.1f}%")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or (args.num_shards or 1) > 1:
        print(f"when every shard has finished: omnisift report {args.out}")
    return 0


def run_report_command(args: argparse.Namespace) -> int:
    from .judge import OpenAICompatibleJudge, judge_api_key
    from .report import write_report

    judge = None
    if args.judge_url:
        if not args.judge_model:
            return _fail("--judge-url needs --judge-model (the model name the endpoint serves)")
        try:
            api_key = judge_api_key(args.judge_url, args.judge_key_env)
        except ValueError as exc:
            return _fail(str(exc))
        judge = OpenAICompatibleJudge(args.judge_url, args.judge_model, api_key=api_key)
    try:
        text, figure, _ = write_report(
            args.dir, judge=judge, figure=args.figure, details=not args.no_details, paper=args.paper
        )
    except FileNotFoundError as exc:
        return _fail(str(exc))
    print(text)
    print(f"\nwrote {args.dir / 'report.md'}, {args.dir / 'report.json'} and {figure}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: `python -m omnisift.evaluation eval|report ...`."""
    parser = argparse.ArgumentParser(
        prog="python -m omnisift.evaluation", description=__doc__.splitlines()[0]
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_command(args.func, args, f"{parser.prog} {args.command}")
