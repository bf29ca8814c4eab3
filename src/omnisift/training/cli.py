"""`omnisift train`: the command-line front of `omnisift.training.train`.

`register(subparsers)` adds the subcommand to an argparse sub-parser set and sets `func` to the
handler (`args.func(args)` returns the exit code). Also runnable alone:
`python -m omnisift.training train ...` (what `accelerate launch -m` needs).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..cli_errors import run_command
from ..config import add_compression_arguments, compression_from_args
from .trainer import DEFAULT_MAX_LENGTH

__all__ = ["register", "run", "config_from_args", "main", "LAUNCH_HELP"]

LAUNCH_HELP = """\
launch:
  one process:             omnisift train --data train.jsonl --media-root videos/ --model Qwen2.5-Omni-7B --out runs/sel
  data parallel (selector): accelerate launch --config_file configs/ddp.yaml -m omnisift.training train \\
                              --data train.jsonl --media-root videos/ --model Qwen2.5-Omni-7B --out runs/sel --bf16
  paper recipe, ZeRO-3:    accelerate launch --config_file configs/zero3.yaml -m omnisift.training train \\
                              --recipe full --data train.jsonl --media-root videos/ --model Qwen2.5-Omni-7B \\
                              --out runs/full --bf16 --gradient-checkpointing --batch-size 1 --grad-accum 16
  continue a stopped run:  the same command with --resume
Global batch = batch-size x grad-accum x processes (the paper: 128).
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `train` subcommand to `subparsers` (from `ArgumentParser.add_subparsers()`)."""
    parser = subparsers.add_parser(
        "train",
        help="train the OmniSIFT audio selector (or the paper's full recipe) on video QA conversations",
        description=(
            "Language-model loss on the answer tokens of (video, question, answer) conversations, with the "
            "OmniSIFT compression applied; the selector learns through its straight-through estimator."
        ),
        epilog=LAUNCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data and model")
    data.add_argument("--data", required=True, help="JSONL of {video, conversations: [human, gpt]} rows")
    data.add_argument(
        "--media-root", default=None, help="folder the video paths are relative to (default: the data file's)"
    )
    data.add_argument(
        "--model", required=True, help="Qwen2.5-Omni checkpoint folder, or 'tiny' (random test model)"
    )
    data.add_argument("--processor", default=None, help="processor folder when the model folder has none")
    data.add_argument("--out", required=True, help="run folder: checkpoints, logs, the trained selector")
    data.add_argument(
        "--init-selector", default=None, help="start from this selector (.safetensors or checkpoint)"
    )
    data.add_argument(
        "--max-length",
        type=int,
        default=DEFAULT_MAX_LENGTH,
        help=f"refuse samples (prompt, video, audio and answer) longer than this many tokens (default "
        f"{DEFAULT_MAX_LENGTH}, the published recipe's)",
    )
    data.add_argument(
        "--num-workers", type=int, default=2, help="data loader worker processes (video decoding)"
    )

    add_compression_arguments(
        parser.add_argument_group("compression"),
        method_help="selector-based method whose selector trains: omnisift or one of its ablations",
        selector=False,
        seed=False,
    )

    optim = parser.add_argument_group("optimisation")
    optim.add_argument(
        "--recipe",
        choices=("selector", "full"),
        default="selector",
        help="selector: only the selector trains (default); full: selector + LLM (the paper's)",
    )
    optim.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    optim.add_argument(
        "--lr", type=float, default=None, help="peak learning rate (default 1e-4 selector, 1e-5 full)"
    )
    optim.add_argument("--batch-size", type=int, default=1, help="samples per process per micro-batch")
    optim.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    optim.add_argument(
        "--warmup-ratio", type=float, default=0.05, help="linear warm-up fraction of the steps (0.05)"
    )
    optim.add_argument("--weight-decay", type=float, default=0.0)
    optim.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (0 = off)")
    optim.add_argument(
        "--bf16", action="store_true", help="bf16 autocast (the frozen model is loaded in bf16)"
    )
    optim.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute LLM activations in backward"
    )
    optim.add_argument("--seed", type=int, default=0)

    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --out"
    )
    run_group.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop this call after N more steps (checkpointed), e.g. to fit a job time limit",
    )
    run_group.add_argument(
        "--save-every", type=int, default=500, help="checkpoint every N steps (and at the end)"
    )
    run_group.add_argument("--keep-checkpoints", type=int, default=2, help="how many checkpoints to keep")
    run_group.add_argument("--log-every", type=int, default=10, help="log a line every N steps")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")
    run_group.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (otherwise refused)"
    )
    run_group.add_argument(
        "--allow-changed-settings",
        action="store_true",
        help="with --resume: apply settings that differ from the checkpoint's (recorded in train_config.json)",
    )
    run_group.add_argument(
        "--max-bad-samples",
        type=int,
        default=10,
        help="unreadable videos skipped (replaced by the next sample) before the run stops (default 10)",
    )
    parser.set_defaults(func=run)
    return parser


def _compression(args: argparse.Namespace) -> Any:
    compression = compression_from_args(args)
    if compression is None:
        raise ValueError(f"--method {args.method} trains nothing: name a selector-based method (omnisift).")
    return compression


def config_from_args(args: argparse.Namespace) -> Any:
    from .trainer import TrainConfig

    return TrainConfig(
        data=args.data,
        out=args.out,
        model=args.model,
        media_root=args.media_root,
        processor=args.processor,
        recipe=args.recipe,
        compression=_compression(args),
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        bf16=args.bf16,
        gradient_checkpointing=args.gradient_checkpointing,
        resume=args.resume,
        seed=args.seed,
        save_every=args.save_every,
        keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every,
        num_workers=args.num_workers,
        init_selector=args.init_selector,
        max_length=args.max_length,
        progress=not args.no_progress,
        stop_after=args.stop_after,
        overwrite=args.overwrite,
        allow_changed_settings=args.allow_changed_settings,
        max_bad_samples=args.max_bad_samples,
    )


def run(args: argparse.Namespace) -> int:
    from .data import DataError, MissingMediaError
    from .state import CheckpointError
    from .trainer import RunExistsError, train

    try:
        config = config_from_args(args)
        result = train(config)
    except (RunExistsError, MissingMediaError, CheckpointError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last = result.records[-1] if result.records else None
    summary = f"step {result.step}/{config.steps}"
    if last is not None:
        summary += f", loss {last['loss']:.4f}, retained {last['retained']:.3f}"
    if _rank() == 0:
        print(
            f"{summary}; selector: {result.selector_path}"
            + (f"; model: {result.final_dir}" if result.final_dir else "")
        )
    return 0


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnisift")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if _rank() == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_command(args.func, args, f"{parser.prog} {args.command}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
