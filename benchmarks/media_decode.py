"""Decode + preprocess time per file: omnisift.media.load vs the published reader, side by side.

The published reader is qwen-omni-utils 0.0.9 with decord, called as the paper's inference script calls
it (at most 256 frames, 256*28*28 pixels a frame, use_audio_in_video=True). Both run in this process with
the same torch thread count and FFmpeg's default decoder threads. For each generated clip (frames carry
their index in their pixels) it prints both times, the ratio, and checks the same source frames were
taken. `--eval` also runs a tiny-model evaluation and compares its wall time with prefetch workers
against the model's own time.

    bash benchmarks/media_env.sh
    PYTHONPATH=src benchmarks/.media-env/bin/python benchmarks/media_decode.py [--seconds 60 130] [--eval]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")

import numpy as np
import torch

from omnisift import media
from omnisift.testing.clips import read_indices, write_clip

MAX_PIXELS = 256 * 28 * 28


def published(path: Path):
    from qwen_omni_utils import process_mm_info

    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": str(path), "max_pixels": MAX_PIXELS, "max_frames": 256},
                {"type": "text", "text": "?"},
            ],
        }
    ]
    audios, _, videos = process_mm_info(messages, use_audio_in_video=True)
    return videos[0], audios[0]


def clip(folder: Path, seconds: float, fps: float) -> Path:
    path = folder / f"clip_{seconds:g}s_{fps:g}fps.mp4"
    if not path.exists():
        write_clip(path, seconds, fps=fps, size=(360, 640), audio_codec="aac", audio_rate=44100, gop=250)
    return path


def time_best(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def decode_rows(folder: Path, seconds: list[float], fps: float, repeats: int) -> list[dict]:
    rows = []
    for length in seconds:
        path = clip(folder, length, fps)
        ours_s, ours = time_best(lambda p=path: media.load(p), repeats)
        theirs_s, (video, audio) = time_best(lambda p=path: published(p), repeats)
        theirs_frames = video.round().clamp(0, 255).to(torch.uint8)
        same = read_indices(ours.frames).tolist() == read_indices(theirs_frames).tolist()
        rows.append(
            {
                "file": path.name,
                "seconds": length,
                "frames": ours.num_frames,
                "size": list(ours.frames.shape[2:]),
                "ours_s": round(ours_s, 3),
                "published_s": round(theirs_s, 3),
                "speedup": round(theirs_s / ours_s, 2),
                "same_source_frames": same,
                "same_shape": list(ours.frames.shape) == list(theirs_frames.shape),
                "max_pixel_diff": int((ours.frames.int() - theirs_frames.int()).abs().max()),
                "audio_samples": [int(ours.audio.size), int(audio.size)],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def eval_row(folder: Path, questions: int, workers: int, max_new_tokens: int) -> dict:
    from omnisift.evaluation.inputs import Protocol
    from omnisift.evaluation.loading import load_model
    from omnisift.evaluation.results import read_rows
    from omnisift.evaluation.runner import EvalConfig, run_eval

    rows = []
    for i in range(questions):
        path = folder / f"eval_{i}.mp4"
        if not path.exists():
            write_clip(path, 20.0, fps=25.0, size=(360, 640), audio_codec="aac", audio_rate=44100)
        rows.append({"video_path": path.name, "answer": "A", "prompt": "A. x\nB. y\nThe best answer is:"})
    qfile = folder / "questions.jsonl"
    qfile.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_model("tiny", None)
    config = EvalConfig(
        benchmark="videomme",
        questions=qfile,
        media_root=folder,
        model="tiny",
        out=Path(tempfile.mkdtemp(prefix="omnisift-evalbench-")),
        workers=workers,
        progress=False,
        protocol=Protocol(max_new_tokens=max_new_tokens),
    )
    start = time.perf_counter()
    outcome = run_eval(config, loaded=loaded)
    wall = time.perf_counter() - start
    done = read_rows(outcome.shard_file)
    model = sum(r["timings"]["generate_s"] for r in done)
    return {
        "questions": len(done),
        "workers": workers,
        "wall_s": round(wall, 2),
        "model_s": round(model, 2),
        "wall_over_model": round(wall / model, 2),
        "errors": sum(r["status"] != "ok" for r in done),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 130.0])
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--clips", type=Path, default=Path(__file__).resolve().parent / ".media-clips")
    parser.add_argument("--eval", action="store_true", help="also time a tiny-model evaluation with prefetch")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    args.clips.mkdir(parents=True, exist_ok=True)
    print(f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    warm = clip(args.clips, 2.0, args.fps)  # first calls pay imports and librosa's JIT: not timed
    media.load(warm)
    published(warm)
    rows = decode_rows(args.clips, args.seconds, args.fps, args.repeats)
    print(f"{'file':<26} {'frames':>6} {'ours s':>8} {'published s':>12} {'speedup':>8} {'same frames':>12}")
    for r in rows:
        print(
            f"{r['file']:<26} {r['frames']:>6} {r['ours_s']:>8.2f} {r['published_s']:>12.2f} "
            f"{r['speedup']:>7.2f}x {str(r['same_source_frames']):>12}"
        )
    if args.eval:
        row = eval_row(args.clips, args.questions, args.workers, args.max_new_tokens)
        print(json.dumps(row))
        print(f"eval: wall {row['wall_s']} s vs model {row['model_s']} s -> {row['wall_over_model']}x")
    print(f"mean speedup {np.mean([r['speedup'] for r in rows]):.2f}x")


if __name__ == "__main__":
    main()
