"""Time every registered selection method on one synthetic clip, side by side with omnisift.

Default: a 60 s clip with its audio track at 880 video tokens per grid (60 grids, 30 two-second groups,
1,500 audio tokens), hidden size 3584, fp32, 2 torch threads, video_drop 0.7 / audio_drop 0.3, median of
5 runs after one warm-up, methods timed round-robin so that machine drift hits them alike. OmniSIFT and its ablations use a randomly initialised selector (timing only);
OmniZip gets a random `audio_saliency` (what the attach layer passes), and the cost of computing that
saliency from a 60 s audio input (3,000 encoder frames, 20 heads of 64) is timed as its own row.

    python benchmarks/methods_time.py --out methods_time.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import fields

import torch

from omnisift import VisionGuidedAudioSelector, select_tokens
from omnisift.methods import METHODS, available_methods, shortcuts_for
from omnisift.methods.omnizip import received_attention
from omnisift.models.qwen2_5_omni import TOKEN_IDS
from omnisift.models.qwen2_5_omni.synthetic import av_sample, build_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tokens-per-grid", type=int, default=880)
    parser.add_argument("--hidden", type=int, default=3584)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--video-drop", type=float, default=0.7)
    parser.add_argument("--audio-drop", type=float, default=0.3)
    parser.add_argument("--methods", nargs="*", default=None, help="subset of methods (default: all)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    batch = build_batch([av_sample(args.seconds, args.tokens_per_grid)], hidden_size=args.hidden, dtype=dtype)
    selector = VisionGuidedAudioSelector(args.hidden).to(dtype).eval()
    audio = batch.input_ids == TOKEN_IDS.audio
    saliency = torch.full(batch.input_ids.shape, float("nan"))
    saliency[audio] = torch.rand(int(audio.sum()), generator=torch.Generator().manual_seed(0))
    methods = args.methods or available_methods()
    if "omnisift" in methods:
        methods = ["omnisift"] + [m for m in methods if m != "omnisift"]

    calls = {}
    for name in methods:
        extra = (
            {"audio_saliency": saliency}
            if "audio_saliency" in {f.name for f in fields(METHODS[name])}
            else {}
        )

        def call(name=name, extra=extra):
            with torch.no_grad():
                return select_tokens(
                    **batch.as_kwargs(),
                    method=name,
                    **shortcuts_for(name, selector=selector),
                    video_drop=args.video_drop,
                    audio_drop=args.audio_drop,
                    **extra,
                )

        calls[name] = call
    if "omnizip" in methods:
        frames, heads, head_dim = int(round(args.seconds * 50)), 20, 64
        gen = torch.Generator().manual_seed(1)
        q = torch.randn(frames, heads, head_dim, generator=gen)
        k = torch.randn(frames, heads, head_dim, generator=gen)
        calls["omnizip saliency (encoder hook)"] = lambda: received_attention(q, k, head_dim**-0.5)

    # Warm up each, then time round-robin so that machine drift hits every method alike.
    stats = {name: fn() for name, fn in calls.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rows = []
    for name in calls:
        row = {
            "method": name,
            "median_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "runs_s": times[name],
        }
        if name in METHODS:
            s = stats[name].stats()[0]
            row |= {"video_kept": s.video_after, "audio_kept": s.audio_after, "retained": s.retained}
        rows.append(row)

    base = next((r["median_s"] for r in rows if r["method"] == "omnisift"), None)
    layout = (
        f"{args.seconds:g} s clip, {args.tokens_per_grid} tokens/grid, hidden {args.hidden}, {args.dtype}, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    print(layout)
    print(f"{'method':34s} {'median ms':>10s} {'min ms':>8s} {'x omnisift':>10s} {'video':>7s} {'audio':>6s}")
    for r in rows:
        ratio = f"{r['median_s'] / base:.2f}" if base else "-"
        print(
            f"{r['method']:34s} {r['median_s'] * 1e3:10.1f} {r['min_s'] * 1e3:8.1f} {ratio:>10s} "
            f"{r.get('video_kept', ''):>7} {r.get('audio_kept', ''):>6}"
        )
    result = {
        "setup": vars(args)
        | {"torch": torch.__version__, "machine": platform.machine(), "cpu": platform.processor()},
        "sequence_length": int(batch.input_ids.shape[1]),
        "rows": rows,
    }
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
