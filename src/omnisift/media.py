"""The one media pipeline: a video file -> sampled, resized frames and its audio track, as the model sees it.

Evaluation, training, the demo and the test fixtures all call `load`, so a clip is sampled the same way
everywhere. The protocol is the published evaluation's (qwen-omni-utils 0.0.9 with decord, called with at
most 256 frames and 256*28*28 pixels a frame, the audio track on), with three deliberate differences:

- the rate handed to the processor is the one the chosen frames really have, so each temporal grid is
  placed at its frame's true time (the published reader declares 2 fps; on long clips its positions are
  off by minutes);
- stereo and 5.1 are averaged to mono (librosa's rule, which the published audio loader uses), never summed
  over sqrt(2) as PyAV's mono resampler would;
- audio past the processor's window (`audio_window_s`: 300 s for Qwen2.5-Omni, none for Qwen3-Omni) is cut
  here and reported (`audio_seconds_dropped`, one warning) instead of being dropped without notice.

The frame factor (frame sides are multiples of it) and the audio window are arguments: `omnisift.inputs`
fills them from the model family's adapter. The default factor, 28, is what the published readers use by
default (patch 14 x spatial merge 2), for Qwen2.5-Omni and for Qwen3-Omni's model-card reader alike.

Which frames: the published indices `round(linspace(0, N - 1, n))` over the whole clip, last frame
included, where N is the number of frames and n is qwen-omni-utils' count (`fps` frames a second, at
least `min_frames`, at most `max_frames` and N, rounded down to an even number). Variable frame rate
files take, for each of the n evenly spaced instants, the frame nearest in time, so positions stay true.

Cost (what a long clip spends, in order): decoding, then the resize, then audio. Decoding feeds each
packet by hand: frames that nothing refers to (disposable B-frames) are skipped unless wanted, and whole
GOPs without a wanted frame are jumped over by seeking; only the wanted frames are converted to RGB.
The resize is torchvision's float bicubic (what the published reader runs, so pixels are identical on
any content; torch's faster uint8 kernel is not), on contiguous float batches.

Threads (decided, not inherited): the wanted frames are split into runs of whole GOPs, one per decoding
thread (`threads`, default one per core), each decoded single-threaded from its own file handle; GOPs are
independent, so this scales where H.264 frame threading gains ~1.2x on two cores once disposable frames
are skipped. Beside them, one thread decodes the audio track from its own handle. PyAV releases the GIL
while decoding. The resize runs after decoding, with torch's thread count: overlapping it with the
decoders made both slower (torch's idle threads spin). A process that decodes while a model runs (the
prefetch workers of evaluation and training) calls `configure_worker_threads` first, which gives torch
one thread there and the decoder `cores // workers`, so the workers and the model do not oversubscribe
the machine.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "AUDIO_RATE",
    "AUDIO_WINDOW_S",
    "DEFAULT_FRAME_FACTOR",
    "Media",
    "MediaError",
    "SamplingConfig",
    "configure_worker_threads",
    "frame_count",
    "frame_size",
    "load",
]

logger = logging.getLogger(__name__)

AUDIO_RATE = 16000  # Whisper's rate: what every Qwen-Omni feature extractor expects
AUDIO_WINDOW_S = 300.0  # the Qwen2.5-Omni processor keeps 4.8 M samples of audio
DEFAULT_FRAME_FACTOR = 28  # patch 14 x spatial merge 2: the published readers' default frame factor
FRAME_FACTOR = 2  # temporal patch: frames go to the vision encoder in pairs
DEFAULT_MAX_PIXELS = 256 * 28 * 28
DEFAULT_MIN_PIXELS = 128 * 28 * 28
SEQUENCE_CELLS = 128000  # the readers' whole-video budget, in merged cells (x factor^2 x 0.9 pixels)
FRAME_MAX_CELLS = 768  # the readers' per-frame ceiling before the caller's cap, in merged cells
_RESIZE_FRAMES = 8  # frames resized together: fewer torch calls; more would spill the caches
_RESIZE_BYTES = 64 << 20  # ... and at most this many bytes of float copy (1080p: 2 frames)
_GATHER_BYTES = 512 << 20  # decoded RGB frames held before resizing (360p: all 256; 1080p: 80; 4K: 20)
_SEEK_MIN_FRAMES = 24  # skip ahead by seeking only when it saves at least this many decoded frames
_warned_dropped = False


class MediaError(RuntimeError):
    """A media file that cannot be used; the message names the file and the reason."""


def _refuse(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{name}={value!r} is not allowed: {allowed}")


def _whole(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise _refuse(name, value, f"a whole number >= {low}")


def _positive(name: str, value: Any) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
    if not ok or not 0 < float(value) < math.inf:
        raise _refuse(name, value, "a finite number > 0")


@dataclass(frozen=True)
class SamplingConfig:
    """The arguments of `load`, as one value (evaluation and training protocols carry one).

    Validated here, once, for every entry point (`omnisift eval`, lmms-eval's `model_args`, training,
    `load` itself and the Python API): a bad value raises ValueError naming the setting, the value and
    the allowed range. `frame_factor` None means the model family's (`omnisift.inputs` fills it).
    """

    fps: float = 2.0
    max_frames: int = 256
    min_frames: int = 4
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_pixels: int = DEFAULT_MIN_PIXELS
    audio_window_s: float | None = AUDIO_WINDOW_S
    frame_factor: int | None = None

    def __post_init__(self) -> None:
        _positive("fps", self.fps)
        _whole("max_frames", self.max_frames, FRAME_FACTOR)
        _whole("min_frames", self.min_frames, 1)
        _whole("min_pixels", self.min_pixels, 1)
        _whole("max_pixels", self.max_pixels, 1)
        if self.min_pixels > self.max_pixels:
            raise _refuse("min_pixels", self.min_pixels, f"at most max_pixels ({self.max_pixels})")
        if self.audio_window_s is not None:
            _positive("audio_window_s", self.audio_window_s)
        if self.frame_factor is not None:
            _whole("frame_factor", self.frame_factor, 2)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a run's identity; `frame_factor` only where it differs from the readers'
        default 28 (runs made before it was a setting keep their identity)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if values["frame_factor"] in (None, DEFAULT_FRAME_FACTOR):
            del values["frame_factor"]
        return values

    def load(self, path: str | Path, *, audio: bool = True, threads: int | None = None) -> Media:
        return load(
            path,
            max_frames=self.max_frames,
            max_pixels=self.max_pixels,
            fps=self.fps,
            audio=audio,
            min_frames=self.min_frames,
            min_pixels=self.min_pixels,
            audio_window_s=self.audio_window_s,
            frame_factor=self.frame_factor or DEFAULT_FRAME_FACTOR,
            threads=threads,
        )


@dataclass
class Media:
    """What `load` returns.

    `frames`: uint8 [T, 3, H, W], contiguous. `timestamps`: seconds of each frame from the video's first
    frame. `indices`: the source frames taken (presentation order). `fps`: the rate handed to the
    processor, (T - 1) / (last - first timestamp), so grid g (frames 2g, 2g+1) is placed at its frame's
    true time. `audio`: 16 kHz mono float32 (channels averaged), None without an audio track, at most
    the audio window long. `duration`: seconds of video. `audio_seconds_dropped`: audio past the window.
    """

    path: Path
    frames: torch.Tensor
    timestamps: np.ndarray
    indices: np.ndarray
    fps: float
    duration: float
    source_fps: float
    source_frames: int
    audio: np.ndarray | None
    audio_seconds_dropped: float = 0.0
    audio_rate: int = AUDIO_RATE

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio kept (what reaches the model)."""
        return 0.0 if self.audio is None else self.audio.size / self.audio_rate


def configure_worker_threads(workers: int) -> int:
    """Thread split for a process that decodes beside a running model: torch gets 1 thread, the decoder
    `cores // workers` (at least 1). Returns the decoder thread count to pass to `load`."""
    torch.set_num_threads(1)
    return max(1, _cores() // max(1, workers))


def _cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def frame_count(
    total_frames: int, source_fps: float, *, fps: float = 2.0, min_frames: int = 4, max_frames: int = 256
) -> int:
    """qwen-omni-utils' frame count n: `fps` a second of a clip of total_frames / source_fps seconds,
    within [ceil2(min_frames), floor2(max_frames)] and at most the clip's frames, rounded down to even."""
    low = math.ceil(min_frames / FRAME_FACTOR) * FRAME_FACTOR
    high = math.floor(max_frames / FRAME_FACTOR) * FRAME_FACTOR
    wanted = total_frames / source_fps * fps
    count = math.floor(min(max(wanted, low), high, total_frames) / FRAME_FACTOR) * FRAME_FACTOR
    if count < FRAME_FACTOR:
        raise MediaError(f"{total_frames} frames is too short a video: at least {FRAME_FACTOR} are needed")
    return count


def frame_size(
    height: int,
    width: int,
    num_frames: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    factor: int = DEFAULT_FRAME_FACTOR,
) -> tuple[int, int]:
    """Resized (height, width), the readers' smart_resize: multiples of `factor`, aspect kept, pixels
    within [min_pixels, cap] where cap = min(max_pixels, max(min(768 f^2, 0.9 * 128000 f^2 / n * 2),
    1.05 * min_pixels)) and f = `factor` (28 for image_patch_size 14, 32 for 16)."""
    area = factor * factor
    total = SEQUENCE_CELLS * area * 0.9
    cap = max(min(FRAME_MAX_CELLS * area, total / num_frames * FRAME_FACTOR), int(min_pixels * 1.05))
    cap = min(max_pixels, cap)
    if max(height, width) / max(min(height, width), 1) > 200:
        raise MediaError(f"aspect ratio of {width}x{height} is above 200")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > cap:
        beta = math.sqrt(height * width / cap)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass
class _Index:
    """The video stream's frames from its packets (no decoding): presentation times and keyframes."""

    pts: np.ndarray  # sorted presentation timestamps, in time_base units
    keyframes: np.ndarray  # sorted pts of keyframe packets
    time_base: Fraction
    rate: float  # frames a second (the stream's average rate, as decord reports it)


class _Audio:
    """Decodes one audio stream's packets (`_read_audio` feeds it, on its own thread and file handle).

    Channels are averaged at the source rate and the mono signal is resampled to 16 kHz once at the end:
    averaging commutes with the (linear) resampler, so this equals resampling every channel and averaging
    after, for half the filter work (stereo) and one resampler call instead of one per frame.
    """

    def __init__(self, stream: Any, window_s: float | None) -> None:
        import av

        self.stream = stream
        self.window_s = window_s
        self.to_float = av.AudioResampler(format="fltp")  # format only: a no-op on AAC's float planes
        self.pieces: list[np.ndarray] = []
        self.decoded = 0  # source-rate samples decoded
        self.rate = 0
        self.skipped_s = 0.0  # duration of the packets past the window, not decoded
        self.full = False

    def add(self, packet: Any) -> None:
        if self.full:
            if packet.duration and self.stream.time_base:
                self.skipped_s += float(packet.duration * self.stream.time_base)
            return
        for frame in self.stream.codec_context.decode(packet):
            self.rate = frame.sample_rate
            if frame.format.name == "fltp":  # AAC, Opus, Vorbis: float planes already, [channels, n]
                self._keep(frame.to_ndarray())
                continue
            frame.pts = None  # container gaps and jumps ignored: samples are counted
            for plain in self.to_float.resample(frame):
                self._keep(plain.to_ndarray())
        if self.window_s is not None and self.rate and self.decoded >= (self.window_s + 1.0) * self.rate:
            self.full = True  # one second past the window: enough for the resampler's tail

    def _keep(self, planes: np.ndarray) -> None:
        """Keep one frame's planes; channels are averaged once, over the whole track, in `finish`."""
        if self.pieces and planes.shape[0] != self.pieces[-1].shape[0]:
            raise MediaError(
                f"the audio channel count changes mid-stream ({self.pieces[-1].shape[0]} -> {planes.shape[0]})"
            )
        self.pieces.append(planes)
        self.decoded += planes.shape[1]

    def finish(self) -> tuple[np.ndarray, float]:
        """The track at 16 kHz, cut at the window; returns (audio, seconds dropped)."""
        import av

        audio = np.zeros(0, dtype=np.float32)
        if self.pieces:
            planes = np.concatenate(self.pieces, axis=1)
            self.pieces.clear()
            signal = planes[0] if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)
            mono = av.AudioFrame.from_ndarray(signal[None], format="fltp", layout="mono")
            mono.sample_rate = self.rate
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE)
            out = resampler.resample(mono) + resampler.resample(None)
            audio = np.concatenate([o.to_ndarray()[0] for o in out])
        total_s = None
        stream = self.stream
        if stream.duration and stream.time_base:
            total_s = float(stream.duration * stream.time_base)
            # AAC decodes whole frames: drop the encoder's padding past the stated duration
            audio = audio[: int(round(total_s * AUDIO_RATE))]
        limit = None if self.window_s is None else int(round(self.window_s * AUDIO_RATE))
        cut = limit is not None and audio.size > limit
        if cut:
            audio = audio[:limit]
        if total_s is None:  # no duration in the header: the packets decoded and those skipped
            total_s = (self.decoded / self.rate if self.rate else 0.0) + self.skipped_s
        dropped = max(0.0, total_s - audio.size / AUDIO_RATE) if cut or self.full else 0.0
        return np.ascontiguousarray(audio, dtype=np.float32), dropped


def _scan(container: Any, stream: Any, path: Path) -> _Index:
    pts, keys = [], []
    for packet in container.demux(stream):
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None:
            if packet.size:
                raise MediaError(f"{path}: video packets without timestamps; remux the file (ffmpeg -c copy)")
            continue
        pts.append(stamp)
        if packet.is_keyframe:
            keys.append(stamp)
    if not pts:
        raise MediaError(f"{path}: the video stream has no frames")
    order = np.unique(np.asarray(pts, dtype=np.int64))
    time_base = stream.time_base or Fraction(1, 90000)
    rate = float(stream.average_rate) if stream.average_rate else 0.0
    if rate <= 0:
        span = float((order[-1] - order[0]) * time_base)
        rate = (order.size - 1) / span if span > 0 else 1.0
    return _Index(order, np.unique(np.asarray(keys, dtype=np.int64)), time_base, rate)


def _choose(index: _Index, count: int) -> np.ndarray:
    """Positions (into index.pts) of the frames to keep: the published indices on a constant frame
    rate; on a variable one, the frame nearest each of `count` evenly spaced instants."""
    total = index.pts.size
    published = torch.linspace(0, total - 1, count).round().long().numpy()
    steps = np.diff(index.pts)
    if steps.size == 0 or np.abs(steps - np.median(steps)).max() <= 0.1 * np.median(steps):
        return published
    targets = np.linspace(float(index.pts[0]), float(index.pts[-1]), count)
    right = np.clip(np.searchsorted(index.pts, targets), 1, total - 1)
    left = right - 1
    nearer_left = targets - index.pts[left] <= index.pts[right] - targets
    return np.where(nearer_left, left, right)


def _resize(batch: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [B, H, W, 3] RGB -> [B, 3, *size] whole numbers in 0..255 (float32 unless no resize was
    needed), bit for bit what qwen-vl-utils gives.

    qwen-vl-utils resizes with torchvision's float path (bicubic, antialias, clamp, round). torch's
    uint8 kernel differs from it on real content (by up to tens of levels next to sharp edges, where
    bicubic overshoots), so the float path is kept, on a contiguous batch (the fastest layout for it;
    the result is the same). A whole batch goes through each torch call: with several torch threads,
    every call is a parallel region whose start and end cost more than a frame's copy when the
    machine is busy, so none is spent per frame.
    """
    frames = torch.from_numpy(batch).permute(0, 3, 1, 2)
    if tuple(frames.shape[2:]) == size:
        return frames.contiguous()
    frames = frames.to(torch.float32, memory_format=torch.contiguous_format)
    frames = torch.nn.functional.interpolate(
        frames, size=size, mode="bicubic", align_corners=False, antialias=True
    )
    return frames.clamp_(0, 255).round_()  # the caller's copy into uint8 is exact


def _segments(index: _Index, order: np.ndarray, count: int) -> list[np.ndarray]:
    """Split the wanted frames (sorted pts) into at most `count` runs that start at a GOP boundary, so
    each run decodes from its own keyframe with nothing from the run before; runs of about equal
    decoding work (frames from the run's keyframe to its last wanted frame)."""
    keys = _keyframes_before(index, order)
    at = np.searchsorted(index.pts, order)
    # A run may start at wanted frame j when its keyframe comes after wanted frame j - 1.
    starts = np.flatnonzero(keys[1:] > order[:-1]) + 1
    if count <= 1 or starts.size == 0:
        return [order]
    key_at = np.searchsorted(index.pts, keys[starts])
    span = at[-1] - at[0] + 1
    targets = at[0] + span * np.arange(1, count) / count
    picks = np.unique(starts[np.abs(key_at[None, :] - targets[:, None]).argmin(axis=1)])
    return np.split(order, picks)


def _keyframes_before(index: _Index, stamps: np.ndarray) -> np.ndarray:
    """The keyframe at or before each pts (the first frame's pts where none is: decoding starts there)."""
    if not index.keyframes.size:
        return np.full(stamps.shape, index.pts[0])
    at = np.searchsorted(index.keyframes, stamps, side="right") - 1
    return np.where(at >= 0, index.keyframes[np.maximum(at, 0)], index.pts[0])


class _Frames:
    """The wanted frames as the decoding threads deliver them: held as RGB until all are decoded, then
    resized in batches (torch's parallel resize would only fight the decoders for the cores), unless
    more than `_GATHER_BYTES` are held (big frames): then the thread that crossed the limit resizes."""

    def __init__(
        self, wanted: np.ndarray, source: tuple[int, int], size: tuple[int, int], path: Path
    ) -> None:
        self.slots = {int(p): np.flatnonzero(wanted == p).tolist() for p in np.unique(wanted)}
        self.source, self.size, self.path = source, size, path
        self.out = torch.empty((len(wanted), 3, *size), dtype=torch.uint8)
        self.step = max(1, min(_RESIZE_FRAMES, _RESIZE_BYTES // max(1, source[0] * source[1] * 3 * 4)))
        self.held: list[tuple[int, np.ndarray]] = []
        self.limit = max(1, _GATHER_BYTES // max(1, source[0] * source[1] * 3))
        self.lock = threading.Lock()

    def add(self, stamp: int, frame: Any) -> None:
        """Called by a decoding thread with one wanted frame (an av.VideoFrame)."""
        if (frame.height, frame.width) != self.source:
            raise MediaError(f"{self.path}: the frame size changes mid-stream; re-encode the file")
        rgb = frame.to_ndarray(format="rgb24")  # packed RGB, as decord converts
        with self.lock:
            self.held.append((stamp, rgb))
            full = self.held if len(self.held) >= self.limit else None
            if full is not None:
                self.held = []
        if full is not None:
            self.resize(full)

    def finish(self) -> torch.Tensor:
        self.resize(self.held)
        self.held = []
        return self.out

    def resize(self, frames: list[tuple[int, np.ndarray]]) -> None:
        """Resize frames into their slots, `step` a torch call, consecutive slots together."""
        frames.sort(key=lambda item: item[0])
        for start in range(0, len(frames), self.step):
            chunk = frames[start : start + self.step]
            stamps = [stamp for stamp, _ in chunk]
            resized = _resize(np.stack([rgb for _, rgb in chunk]), self.size)
            first = self.slots[stamps[0]][0]
            taken = [slot for stamp in stamps for slot in self.slots[stamp]]
            if taken == list(range(first, first + len(stamps))):
                self.out[first : first + len(stamps)].copy_(resized)  # the usual case: one copy
            else:  # a frame taken twice (variable frame rate)
                for stamp, image in zip(stamps, resized, strict=True):
                    for slot in self.slots[stamp]:
                        self.out[slot].copy_(image)


def _decode_frames(
    path: Path,
    index: _Index,
    chosen: np.ndarray,
    source: tuple[int, int],
    size: tuple[int, int],
    threads: int,
) -> torch.Tensor:
    """Decode the chosen frames: up to `threads` runs of whole GOPs decoded side by side, each by its own
    decoder on its own file handle (GOPs are independent, and H.264 frame threading gains only ~1.2x on
    two cores once disposable frames are skipped). With fewer GOPs than threads, each run's decoder gets
    `threads // runs` frame threads."""
    wanted = index.pts[chosen]
    runs = _segments(index, np.unique(wanted), threads)
    frames = _Frames(wanted, source, size, path)
    if len(runs) == 1:
        _decode_run(path, index, runs[0], threads, frames, threading.Event())
        return frames.finish()
    stop = threading.Event()
    with ThreadPoolExecutor(len(runs), thread_name_prefix="omnisift-decode") as decoders:
        per_run = max(1, threads // len(runs))  # frame threads when there are fewer runs than threads
        jobs = [decoders.submit(_decode_run, path, index, run, per_run, frames, stop) for run in runs]
        try:
            for job in jobs:
                job.result()
        finally:
            stop.set()  # the others stop at their next frame when one failed
    return frames.finish()


def _decode_run(
    path: Path, index: _Index, targets: np.ndarray, threads: int, frames: _Frames, stop: threading.Event
) -> None:
    """Decode one run of wanted frames (sorted pts) into `frames`.

    Every packet is fed by hand so each one gets its own `skip_frame`: a packet whose frame is not
    wanted is decoded only if other frames refer to it (NONREF skips the disposable B-frames; the
    frames that are decoded do not depend on them, so they are bit-exact). Whole GOPs that hold no
    wanted frame are jumped over by seeking to the keyframe before the next wanted one.
    """
    import av

    wanted_set = set(targets.tolist())
    keys = _keyframes_before(index, targets)
    at = np.searchsorted(index.pts, targets)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        codec = stream.codec_context
        codec.thread_count = threads

        def decoded_frames():
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                codec.skip_frame = "DEFAULT" if stamp is None or stamp in wanted_set else "NONREF"
                yield from codec.decode(packet)  # the last (empty) packet drains the decoder

        decoded = None
        last, last_at = None, 0  # pts of the last frame taken, and its position among all frames
        for target, key, target_at in zip(targets.tolist(), keys.tolist(), at.tolist(), strict=True):
            if stop.is_set():
                return
            if decoded is None or (key > last and target_at - last_at >= _SEEK_MIN_FRAMES):
                container.seek(int(key), stream=stream, backward=True)
                decoded = decoded_frames()
            found = None
            for frame in decoded:
                if frame.pts is None:
                    continue
                last = int(frame.pts)
                if last >= target:
                    found = frame
                    break
            if found is None:
                raise MediaError(
                    f"{path}: decoding stopped before the frame at {float(target * index.time_base):.3f} s"
                )
            last_at = target_at
            frames.add(target, found)


def _read_audio(path: Path, window_s: float | None, stop: threading.Event) -> tuple[np.ndarray | None, float]:
    """The default audio track at 16 kHz mono, cut at the window: (audio or None, seconds dropped).
    Opens its own handle on the file, so it runs beside the video decode; `stop` ends it early (the
    video failed, nobody will read the result)."""
    import av

    with av.open(str(path)) as container:
        stream = _default_audio_stream(container)
        if stream is None:
            return None, 0.0
        track = _Audio(stream, window_s)
        for packet in container.demux(stream):
            if stop.is_set():
                return None, 0.0
            track.add(packet)
        return track.finish()


def _default_audio_stream(container: Any) -> Any | None:
    import av

    streams = list(container.streams.audio)
    default = [s for s in streams if s.disposition & av.stream.Disposition.default]
    return (default or streams or [None])[0]


def load(
    path: str | Path,
    *,
    max_frames: int = 256,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fps: float = 2.0,
    audio: bool = True,
    min_frames: int = 4,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    audio_window_s: float | None = AUDIO_WINDOW_S,
    frame_factor: int = DEFAULT_FRAME_FACTOR,
    threads: int | None = None,
) -> Media:
    """Decode a video file into the frames and audio the model is given (see the module docstring).

    `max_frames`, `max_pixels` (per frame), `fps`, `min_frames` and `min_pixels` follow qwen-omni-utils;
    `audio=False` skips the audio track; `audio_window_s` is the processor's audio window (None keeps
    all audio); `frame_factor` is what frame sides are multiples of (28 = the readers' default
    image_patch_size 14, 32 = image_patch_size 16); `threads` is the number of video decoding threads
    (None: one per core). Settings are checked by `SamplingConfig` (ValueError naming the bad one);
    raises `MediaError` naming the file for anything unreadable.
    """
    import av

    global _warned_dropped
    SamplingConfig(
        fps=fps,
        max_frames=max_frames,
        min_frames=min_frames,
        max_pixels=max_pixels,
        min_pixels=min_pixels,
        audio_window_s=audio_window_s,
        frame_factor=frame_factor,
    )
    path = Path(path)
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads}: decoding needs at least 1 thread (None: one per core)")
    if not path.is_file():
        raise MediaError(f"{path}: file not found")
    with ThreadPoolExecutor(1, thread_name_prefix="omnisift-audio") as audio_reader:
        stop_audio = threading.Event()
        sound_job = audio_reader.submit(_read_audio, path, audio_window_s, stop_audio) if audio else None
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise MediaError(f"{path}: no video stream")
                stream = container.streams.video[0]
                index = _scan(container, stream, path)
                count = frame_count(
                    index.pts.size, index.rate, fps=fps, min_frames=min_frames, max_frames=max_frames
                )
                height, width = stream.codec_context.height, stream.codec_context.width
                if not height or not width:
                    raise MediaError(f"{path}: the video stream has no frame size")
                size = frame_size(
                    height, width, count, max_pixels=max_pixels, min_pixels=min_pixels, factor=frame_factor
                )
                chosen = _choose(index, count)
            decoders = _cores() if threads is None else threads
            frames = _decode_frames(path, index, chosen, (height, width), size, decoders)
            sound, dropped = (None, 0.0) if sound_job is None else sound_job.result()
        except MediaError:
            raise
        except (av.error.FFmpegError, ValueError, OSError, StopIteration) as exc:
            raise MediaError(
                f"{path}: unreadable video ({type(exc).__name__}: {exc}); check or re-encode the file"
            ) from exc
        finally:
            stop_audio.set()  # a no-op once the audio is read; ends it early when the video failed
    stamps = (index.pts[chosen] - index.pts[0]).astype(np.float64) * float(index.time_base)
    span = stamps[-1] - stamps[0]
    duration = float((index.pts[-1] - index.pts[0]) * index.time_base) + 1.0 / index.rate
    rate = (count - 1) / span if span > 0 else count / duration
    if dropped > 0 and not _warned_dropped:
        _warned_dropped = True
        logger.warning(
            "%s: %.1f s of audio past the processor's %.0f s window are dropped (reported per sample as "
            "audio_seconds_dropped; this warning is shown once)",
            path,
            dropped,
            audio_window_s,
        )
    logger.debug("%s: %d of %d frames at %.4f fps, size %s", path, count, index.pts.size, rate, size)
    return Media(
        path=path,
        frames=frames,
        timestamps=stamps,
        indices=np.asarray(chosen, dtype=np.int64),
        fps=rate,
        duration=duration,
        source_fps=index.rate,
        source_frames=int(index.pts.size),
        audio=sound,
        audio_seconds_dropped=dropped,
    )
