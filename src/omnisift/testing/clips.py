"""Generated media for tests, demos and benchmarks (no downloads): every clip writer in one place.

- `make_clip`: moving frames and a tone whose pitch steps each second (chunks differ), any length;
  `tone_clips` writes a batch of them told apart by length and pitch.
- `write_clip`: frames that say which source frame they are (band k's gray level encodes base-16 digit k
  of the index, 15 levels apart, so the index survives H.264 and any resize); `read_indices` reads them
  back, for checking which frames a reader picked. Audio layouts mono to 5.1, several streams.
- `write_silent_clip`: a video stream only (no audio track).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "make_clip",
    "tone_clips",
    "write_clip",
    "read_indices",
    "written_audio",
    "write_silent_clip",
    "frame_image",
]

DIGITS = 4  # up to 65,536 frames: 400 s at 60 fps fits
RATE = 16000


def frame_image(index: int, height: int, width: int) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    bounds = np.linspace(0, height, DIGITS + 1).astype(int)
    for k in range(DIGITS):
        digit = (index >> (4 * k)) & 15
        image[bounds[k] : bounds[k + 1]] = 16 + 15 * digit
    return image


def read_indices(frames) -> np.ndarray:
    """Source indices written into frames (uint8 [T, 3, H, W] tensor or array)."""
    array = np.asarray(frames, dtype=np.float64)
    height = array.shape[2]
    bounds = np.linspace(0, height, DIGITS + 1)
    index = np.zeros(array.shape[0], dtype=np.int64)
    for k in range(DIGITS):
        lo, hi = bounds[k], bounds[k + 1]
        margin = (hi - lo) / 4
        band = array[:, :, int(lo + margin) : int(hi - margin), :].mean(axis=(1, 2, 3))
        index += np.clip(np.round((band - 16) / 15), 0, 15).astype(np.int64) << (4 * k)
    return index


def channel_signal(channel: int, samples: int, rate: int = RATE) -> np.ndarray:
    """A distinct tone per channel (different pitch and level)."""
    t = np.arange(samples) / rate
    return ((0.1 + 0.05 * channel) * np.sin(2 * np.pi * (220 + 110 * channel) * t)).astype(np.float32)


def write_clip(
    path: str | Path,
    seconds: float,
    fps: float = 25.0,
    size: tuple[int, int] = (64, 64),
    *,
    audio_layouts: Sequence[str] = ("stereo",),
    default_audio: int | None = None,
    audio_codec: str = "pcm_s16le",
    audio_rate: int = RATE,
    frame_times: Sequence[float] | None = None,
    start_s: float = 0.0,
    gop: int | None = None,
) -> Path:
    """Write a clip (container from the suffix: .mkv for PCM audio, .mp4 for AAC, .ts without durations).

    `frame_times` (seconds) replaces the constant rate (variable frame rate); `start_s` shifts the video
    stream's first timestamp; `audio_layouts` gives one audio stream per entry ("mono", "stereo", "5.1"),
    `default_audio` marks one of them as the default stream.
    """
    import av

    path = Path(path)
    height, width = size
    times = np.arange(int(round(seconds * fps))) / fps if frame_times is None else np.asarray(frame_times)
    tick = Fraction(1, 1000) if frame_times is not None else 1 / Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        video.options = {"preset": "ultrafast", "crf": "10", **({"g": str(gop)} if gop else {})}
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = tick
        audios = []
        for k, layout in enumerate(audio_layouts):
            stream = container.add_stream(audio_codec, rate=audio_rate, layout=layout)
            if default_audio is not None:
                stream.disposition = av.stream.Disposition.default if k == default_audio else 0
            audios.append(stream)
        offset = int(round(start_s / tick))
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_image(i, height, width), format="rgb24")
            frame.pts = offset + int(round(t / tick))
            frame.time_base = tick
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        total = int(round(seconds * audio_rate))
        for k, (stream, layout) in enumerate(zip(audios, audio_layouts, strict=True)):
            channels = av.AudioLayout(layout).nb_channels
            signal = np.stack([channel_signal(c + 3 * k, total, audio_rate) for c in range(channels)])
            fmt = "s16p" if audio_codec.startswith("pcm") else "fltp"
            _mux_audio(container, stream, signal, layout, fmt, audio_rate)
    return path


def _mux_audio(container, stream, signal: np.ndarray, layout: str, fmt: str, rate: int) -> None:
    """Encode `signal` (float [channels, samples]) into `stream` in codec-sized frames, then flush it;
    "s16p" scales to int16, "fltp" writes the floats."""
    import av

    step = stream.codec_context.frame_size or 1024
    for start in range(0, signal.shape[1], step):
        chunk = signal[:, start : start + step]
        if fmt == "s16p":
            chunk = np.round(chunk * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def written_audio(layout: str, seconds: float, stream: int = 0, rate: int = RATE) -> np.ndarray:
    """The channels `write_clip` writes for audio stream `stream` (float, [channels, samples])."""
    import av

    channels = av.AudioLayout(layout).nb_channels
    total = int(round(seconds * rate))
    return np.stack([channel_signal(c + 3 * stream, total, rate) for c in range(channels)])


def _clip_frame(index: int, count: int, height: int, width: int) -> np.ndarray:
    """One RGB frame: a colour gradient that drifts over time plus a bright square crossing left to right."""
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    phase = index / max(count, 1)
    frame = np.empty((height, width, 3), dtype=np.float32)
    frame[..., 0] = 40 + 150 * xs
    frame[..., 1] = 40 + 150 * ys
    frame[..., 2] = 60 + 120 * (0.5 + 0.5 * np.sin(2 * np.pi * (xs + ys + phase)))
    side = max(4, min(height, width) // 4)
    x0 = int(round(phase * (width - side)))
    y0 = (height - side) // 2
    frame[y0 : y0 + side, x0 : x0 + side] = 250.0
    return frame.clip(0, 255).astype(np.uint8)


def _clip_audio(seconds: float, tone_hz: float, sample_rate: int) -> np.ndarray:
    """Mono float32 tone whose amplitude swells and whose pitch steps up each second (chunks differ)."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    freq = tone_hz * (1.0 + 0.25 * np.floor(t))
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    amplitude = 0.25 + 0.2 * np.sin(2 * np.pi * 0.5 * t)
    return (amplitude * np.sin(phase)).astype(np.float32)


def make_clip(
    path: str | Path,
    seconds: float,
    fps: float = 4.0,
    size: tuple[int, int] = (112, 112),
    tone_hz: float = 440.0,
    sample_rate: int = 16000,
) -> Path:
    """Write an mp4 (H.264 or MPEG-4 video, AAC audio) of ``seconds`` with moving frames and a tone.

    ``size`` is (height, width) and must be even (yuv420p). Written with PyAV, no ffmpeg subprocess.
    """
    import av

    path = Path(path)
    height, width = size
    if height % 2 or width % 2:
        raise ValueError(f"frame size must be even, got {size}")
    if seconds <= 0 or fps <= 0:
        raise ValueError("seconds and fps must be positive")
    rate = Fraction(fps).limit_denominator(1000)
    n_frames = max(1, int(round(seconds * fps)))
    audio = _clip_audio(seconds, tone_hz, sample_rate)

    with av.open(str(path), mode="w") as container:
        try:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.options = {"preset": "ultrafast", "crf": "18"}
        except (av.codec.codec.UnknownCodecError, ValueError):  # pragma: no cover - build without x264
            vstream = container.add_stream("mpeg4", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        astream = container.add_stream("aac", rate=sample_rate, layout="mono")

        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(_clip_frame(i, n_frames, height, width), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))

        _mux_audio(container, astream, audio[None, :], "mono", "fltp", sample_rate)
    return path


def tone_clips(folder: Path, seconds: Sequence[float]) -> list[Path]:
    """`make_clip` clips a.mp4, b.mp4, ... of the given lengths in `folder`; clip k's tone is 330 * (k + 1) Hz,
    so samples of one batch differ in sound as well as length."""
    return [
        make_clip(folder / f"{chr(ord('a') + k)}.mp4", length, tone_hz=330 * (k + 1))
        for k, length in enumerate(seconds)
    ]


def write_silent_clip(path: Path, seconds: float, fps: int = 4, size: int = 64) -> Path:
    """An mp4 with a video stream only (no audio track)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            image = np.full((size, size, 3), (40 * i) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
