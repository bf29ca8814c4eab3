"""Decode + preprocess time per file: omnisift.media.load vs the published reader, side by side.

The published reader is qwen-omni-utils 0.0.9 with decord, called as the paper's inference script calls
it (at most 256 frames, 256*28*28 pixels a frame, use_audio_in_video=True). Both run in this process with
the same torch thread count and FFmpeg's default decoder threads, alternately (ours, theirs, ours, ...)
so that load from other processes hits both alike; the best of `--repeats` is kept. Two kinds of
generated clip, each frame carrying its index in gray bands:

- `flat`: the bands fill the frame; x264 ultrafast (P-frames only, GOP 250) with AAC stereo 44.1 kHz;
- `x264`: bands on the left half, a moving colour pattern with sharp edges on the right half (so colour
  conversion and resize are compared on real chroma and overshoot), encoded with libx264's defaults
  (preset medium: B-frames, B-pyramid, GOP 250 with scene cuts), as real files are.

For each clip it prints both times, the ratio, whether the same source frames were taken and the largest
pixel difference over the whole frames (0 = identical). `--eval` also runs a tiny-model evaluation and
compares its wall time with prefetch workers against the model's time, both in the same run and alone
(an in-process run, where media is prepared between generate calls).

    bash benchmarks/media_env.sh
    PYTHONPATH=src benchmarks/.media-env/bin/python benchmarks/media_decode.py [--seconds 60 130 300]
        [--kinds flat x264] [--repeats 3] [--eval]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")

import numpy as np
import torch

from omnisift import media
from omnisift.testing.clips import frame_image, read_indices, write_clip

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


def textured_frame(index: int, height: int, width: int) -> np.ndarray:
    """Index bands on the left half; on the right, colour ramps that move every frame and wrap around
    (sharp edges: bicubic overshoot) plus a chroma-only checker pattern."""
    image = frame_image(index, height, width)
    half = width // 2
    y, x = np.mgrid[0:height, 0:half]
    image[:, half:, 0] = (3 * x + 5 * index) % 256
    image[:, half:, 1] = (2 * y + 7 * index) % 256
    image[:, half:, 2] = np.where(((x + index) // 8 + y // 8) % 2 == 0, 40, 220)
    return image


def write_textured(path: Path, seconds: float, fps: float, size: tuple[int, int]) -> Path:
    """Like write_clip's clips, but with `textured_frame` and libx264's default settings."""
    import av

    from omnisift.testing.clips import channel_signal

    height, width = size
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=44100, layout="stereo")
        for i in range(int(round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(textured_frame(i, height, width), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        total = int(round(seconds * 44100))
        signal = np.stack([channel_signal(c, total, 44100) for c in range(2)])
        for start in range(0, total, 1024):
            chunk = np.ascontiguousarray(signal[:, start : start + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


def clip(folder: Path, seconds: float, fps: float, kind: str = "flat") -> Path:
    path = folder / f"{kind}_{seconds:g}s_{fps:g}fps.mp4"
    if not path.exists():
        size = (360, 640)
        if kind == "flat":
            write_clip(path, seconds, fps=fps, size=size, audio_codec="aac", audio_rate=44100, gop=250)
        else:
            write_textured(path, seconds, fps, size)
    return path


def cpu_seconds() -> float:
    """CPU time of this process's threads and of its finished children (the published audio loader
    runs an ffmpeg process): a figure that load from other users of the machine barely moves."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_side_by_side(ours, theirs, repeats: int):
    """Best wall and CPU time of each, running them alternately."""
    wall, cpu, outs = [float("inf")] * 2, [float("inf")] * 2, [None, None]
    for _ in range(repeats):
        for k, fn in enumerate((ours, theirs)):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            outs[k] = fn()
            wall[k] = min(wall[k], time.perf_counter() - start)
            cpu[k] = min(cpu[k], cpu_seconds() - start_cpu)
    return wall, cpu, outs


def decode_rows(folder: Path, seconds: list[float], fps: float, kinds: list[str], repeats: int) -> list[dict]:
    rows = []
    for kind in kinds:
        for length in seconds:
            rows.append(decode_row(clip(folder, length, fps, kind), kind, length, repeats))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def decode_row(path: Path, kind: str, length: float, repeats: int) -> dict:
    (ours_s, theirs_s), (ours_cpu, theirs_cpu), (ours, (video, audio)) = time_side_by_side(
        lambda: media.load(path), lambda: published(path), repeats
    )
    theirs_frames = video.round().clamp(0, 255).to(torch.uint8)
    bands = slice(None) if kind == "flat" else slice(0, ours.frames.shape[3] // 2 - 8)
    same = read_indices(ours.frames[..., bands]).tolist() == read_indices(theirs_frames[..., bands]).tolist()
    same_shape = list(ours.frames.shape) == list(theirs_frames.shape)
    return {
        "file": path.name,
        "seconds": length,
        "frames": ours.num_frames,
        "size": list(ours.frames.shape[2:]),
        "ours_s": round(ours_s, 3),
        "published_s": round(theirs_s, 3),
        "speedup": round(theirs_s / ours_s, 2),
        "ours_cpu_s": round(ours_cpu, 3),
        "published_cpu_s": round(theirs_cpu, 3),
        "cpu_ratio": round(theirs_cpu / ours_cpu, 2),
        "same_source_frames": same,
        "same_shape": same_shape,
        "max_pixel_diff": int((ours.frames.int() - theirs_frames.int()).abs().max()) if same_shape else None,
        "audio_samples": [int(ours.audio.size), int(audio.size)],
        "audio_max_diff": round(float(np.abs(ours.audio - audio[: ours.audio.size]).max()), 5),
    }


def eval_row(folder: Path, questions: int, workers: int, max_new_tokens: int) -> dict:
    from omnisift.evaluation.loading import load_compressed
    from omnisift.evaluation.results import read_rows
    from omnisift.evaluation.runner import EvalConfig, run_eval
    from omnisift.inputs import Protocol

    rows = []
    for i in range(questions):
        path = folder / f"eval_{i}.mp4"
        if not path.exists():
            write_clip(path, 20.0, fps=25.0, size=(360, 640), audio_codec="aac", audio_rate=44100)
        rows.append({"video_path": path.name, "answer": "A", "prompt": "A. x\nB. y\nThe best answer is:"})
    qfile = folder / "questions.jsonl"
    qfile.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_compressed("tiny", None)

    def run(prefetch_workers: int) -> tuple[float, float, int]:
        config = EvalConfig(
            benchmark="videomme",
            questions=qfile,
            media_root=folder,
            model="tiny",
            out=Path(tempfile.mkdtemp(prefix="omnisift-evalbench-")),
            workers=prefetch_workers,
            progress=False,
            protocol=Protocol(max_new_tokens=max_new_tokens),
        )
        start = time.perf_counter()
        outcome = run_eval(config, loaded=loaded)
        wall = time.perf_counter() - start
        done = read_rows(outcome.shard_file)
        errors = sum(r["status"] != "ok" for r in done) + len(rows) - len(done)
        return wall, sum(r["timings"]["generate_s"] for r in done), errors

    # In-process first: media is prepared between generate calls, so its generate time is the model alone.
    _, alone, errors_alone = run(0)
    wall, model, errors = run(workers)
    return {
        "questions": len(rows),
        "workers": workers,
        "wall_s": round(wall, 2),
        "model_s": round(model, 2),
        "model_alone_s": round(alone, 2),
        "wall_over_model": round(wall / model, 2),
        "wall_over_model_alone": round(wall / alone, 2),
        "errors": errors + errors_alone,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 130.0, 300.0])
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--kinds", nargs="+", choices=["flat", "x264"], default=["flat", "x264"])
    parser.add_argument("--repeats", type=int, default=3)
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
    rows = decode_rows(args.clips, args.seconds, args.fps, args.kinds, args.repeats)
    print(
        f"{'file':<26} {'frames':>6} {'ours s':>8} {'published s':>12} {'speedup':>8} {'same frames':>12} "
        f"{'max diff':>9} {'CPU ours/published':>19}"
    )
    for r in rows:
        print(
            f"{r['file']:<26} {r['frames']:>6} {r['ours_s']:>8.2f} {r['published_s']:>12.2f} "
            f"{r['speedup']:>7.2f}x {str(r['same_source_frames']):>12} {r['max_pixel_diff']!s:>9} "
            f"{r['ours_cpu_s']:>7.2f}/{r['published_cpu_s']:.2f} s"
        )
    if args.eval:
        row = eval_row(args.clips, args.questions, args.workers, args.max_new_tokens)
        print(json.dumps(row))
        print(
            f"eval, {row['questions']} questions, {row['workers']} prefetch worker(s): wall {row['wall_s']} s vs "
            f"model {row['model_s']} s in the same run -> {row['wall_over_model']}x; vs the model alone "
            f"(in-process run) {row['model_alone_s']} s -> {row['wall_over_model_alone']}x"
        )
    print(
        f"mean speedup {np.mean([r['speedup'] for r in rows]):.2f}x, lowest {min(r['speedup'] for r in rows):.2f}x"
    )


if __name__ == "__main__":
    main()
