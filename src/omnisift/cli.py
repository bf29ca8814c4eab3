"""`omnisift` command line: demo, show, methods, eval, report, train, bench."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .cli_errors import run_command

__all__ = ["main", "build_parser"]


def _demo(args: argparse.Namespace) -> int:
    import torch

    from .demo import format_demo, run_demo

    run = run_demo(
        args.model,
        args.video,
        selector_path=args.selector,
        retain=args.retain,
        seconds=args.seconds,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        gain=not args.no_gain,
        picture=None if args.no_picture else args.picture,
    )
    print(format_demo(run))
    return 0


def _show(args: argparse.Namespace) -> int:
    from .methods import parse_method_params
    from .visualize import show

    picture = show(
        args.video,
        args.out,
        model=args.model,
        methods=args.method,
        retain=args.retain,
        audio_drop=args.audio_drop,
        selector=args.selector,
        method_params=parse_method_params(args.method_param),
        max_pixels=args.max_pixels,
        seconds=args.seconds,
        device=args.device,
        dtype=args.dtype,
    )
    for keep in picture.maps:
        for stage in keep.stages:
            where = "" if len(keep.stages) == 1 else f", {stage.label}"
            print(
                f"{keep.label}{where}: video {stage.video_kept}/{stage.video_total}, "
                f"audio {stage.audio_kept}/{stage.audio_keep.size}"
            )
    print(f"wrote {picture.path}")
    return 0


def _methods(args: argparse.Namespace) -> int:
    from .config import NO_COMPRESSION
    from .methods.catalog import describe_methods

    rows = describe_methods()
    width = max(len(row["name"]) for row in rows)
    print(f"{NO_COMPRESSION[0]:<{width}}  {'':<12} no compression")
    print(
        f"{'':<{width}}  keeps every token (the baseline; also '{NO_COMPRESSION[1]}'); takes no other setting"
    )
    for row in rows:
        print(f"{row['name']:<{width}}  {row['modalities']:<12} {row['uses']}")
        print(f"{'':<{width}}  {row['summary']}")
        print(f"{'':<{width}}  paper: {row['paper']}")
        if row["parameters"]:
            params = ", ".join(f"{k}={v!r}" for k, v in row["parameters"].items())
            print(f"{'':<{width}}  parameters (--method-param NAME=VALUE): {params}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnisift", description="Drop redundant audio and video tokens of omni-modal LLMs (OmniSIFT)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="run a clip with and without compression (default: tiny random model + generated clip)",
        description="Side-by-side table of tokens, prefill time, peak memory and outputs. Without --model it "
        "uses a tiny random-weight Qwen2.5-Omni and a generated clip: the numbers show the mechanics, the "
        "outputs are meaningless.",
    )
    demo.add_argument(
        "--model",
        default="tiny",
        help="checkpoint folder, or a random-weight fixture name (default: tiny, a tiny Qwen2.5-Omni)",
    )
    demo.add_argument(
        "--video", help="video file (default: a generated clip with a moving square and a tone)"
    )
    demo.add_argument("--selector", help="selector file or folder (default: the model folder's own)")
    demo.add_argument(
        "--retain", type=float, nargs="+", help="retained fractions to compare (default 0.35 0.25)"
    )
    demo.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip")
    demo.add_argument("--max-new-tokens", type=int, default=16)
    demo.add_argument("--device", default="cpu")
    demo.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    demo.add_argument(
        "--no-gain",
        action="store_true",
        help="skip the prefill timing on a 7B-shaped thinker (random-weight demo only; about half a minute)",
    )
    demo.add_argument(
        "--picture",
        default="omnisift-demo.png",
        help="where `omnisift show` draws the kept tokens of the clip",
    )
    demo.add_argument("--no-picture", action="store_true", help="draw no picture")
    demo.set_defaults(func=_demo)

    show = sub.add_parser(
        "show",
        help="draw what methods keep of a clip: kept patches on the frames, kept audio on the time axis",
        description="One PNG per run: for each method (at the same budget) the sampled frames of every "
        "2-second chunk with dropped patches dimmed and kept ones outlined, and the waveform with the kept "
        "audio tokens marked. Without VIDEO it draws the demo's generated clip.",
    )
    show.add_argument("video", nargs="?", help="video file (default: the demo's generated clip)")
    show.add_argument("--out", required=True, help="PNG file to write")
    show.add_argument("--model", default="tiny", help="checkpoint folder or fixture name (default: tiny)")
    show.add_argument(
        "--method",
        default="omnisift",
        help="method, or several side by side: --method omnisift,omnizip,random",
    )
    show.add_argument("--retain", type=float, default=0.35, help="fraction of audio+video tokens kept")
    show.add_argument("--audio-drop", type=float, default=0.3, help="fraction of audio tokens dropped")
    show.add_argument("--selector", help="selector file or folder (default: the model folder's own)")
    show.add_argument(
        "--method-param", action="append", metavar="NAME=VALUE", help="a method setting (repeatable)"
    )
    show.add_argument(
        "--max-pixels", type=int, help="pixel cap of a processed frame (default: the model's protocol)"
    )
    show.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip")
    show.add_argument("--device", default=None, help="default: the GPU when there is one, else the CPU")
    show.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    show.set_defaults(func=_show)

    methods = sub.add_parser("methods", help="list the selection methods")
    methods.set_defaults(func=_methods)

    for module in ("omnisift.evaluation.cli", "omnisift.training.cli", "omnisift.benchmarking.cli"):
        __import__(module, fromlist=["register"]).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run_command(args.func, args, f"omnisift {args.command}")


if __name__ == "__main__":
    sys.exit(main())
