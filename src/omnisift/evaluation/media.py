"""Decode a benchmark video into sampled frames (with their real timestamps) and its audio track.

Why not let the processor sample: the published evaluation capped videos at 256 frames but let the
processor assume 2 fps, so for every video longer than 128 s the video's temporal positions no longer
matched the audio's (SPEC 4). Here frames are sampled at `fps` (2), capped at `max_frames` (256), and the
fps actually achieved is returned so the processor and `get_rope_index` place each grid at its real
second. Everything is decoded in-process with PyAV (no ffmpeg subprocess).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["MediaError", "SampledVideo", "SamplingConfig", "decode_audio", "load_video", "plan_frames"]

logger = logging.getLogger(__name__)


class MediaError(RuntimeError):
    """A video that cannot be used; the message is the reason stored in the error row."""


@dataclass(frozen=True)
class SamplingConfig:
    """Frame and audio sampling; defaults follow the published protocol (SPEC 7, qwen-omni-utils)."""

    fps: float = 2.0
    max_frames: int = 256
    min_frames: int = 4
    frame_factor: int = 2  # the vision encoder's temporal patch: frames come in pairs
    max_pixels: int = 256 * 28 * 28
    min_pixels: int = 128 * 28 * 28
    total_pixels: int = int(128000 * 28 * 28 * 0.9)
    size_factor: int = 28
    audio_rate: int = 16000
    max_audio_seconds: float | None = None  # the feature extractor truncates anyway; None keeps all
    seek_gap_s: float = 4.0  # seek instead of decoding through gaps longer than this


@dataclass
class SampledVideo:
    """Frames (T, 3, H, W) uint8 at `timestamps` (s, from the first frame), the fps they were taken at,
    and the audio track as mono float32 at `audio_rate` (None when the file has no audio stream)."""

    frames: torch.Tensor
    timestamps: np.ndarray
    fps: float
    duration: float
    source_fps: float | None
    audio: np.ndarray | None
    audio_rate: int

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def plan_frames(
    duration: float, config: SamplingConfig, total_frames: int | None = None
) -> tuple[int, float]:
    """Number of frames to sample and the real sampling fps for a clip of `duration` seconds.

    Frames are taken at i / fps for i < n (frame pair g starts at second 2g / fps), so t ids
    floor(g * 2 / fps * 25) land on the same second as the audio tokens there.
    """
    if not duration > 0:
        raise MediaError(f"video has no duration ({duration})")
    wanted = duration * config.fps
    upper = config.max_frames if total_frames is None else min(config.max_frames, max(total_frames, 1))
    count = min(max(wanted, config.min_frames), upper)
    count = max(config.frame_factor, int(count // config.frame_factor) * config.frame_factor)
    return count, count / duration


def frame_size(height: int, width: int, num_frames: int, config: SamplingConfig) -> tuple[int, int]:
    """Resized (height, width): multiples of 28 within the per-frame pixel cap, aspect ratio kept.

    Same rule as qwen-omni-utils / the processor's `cap_pixels_per_frame=True`: the cap is
    min(max_pixels, total_pixels / frames * 2), never below 1.05 * min_pixels.
    """
    factor = config.size_factor
    max_pixels = max(
        min(config.max_pixels, config.total_pixels * config.frame_factor // max(num_frames, 1)),
        int(config.min_pixels * 1.05),
    )
    if max(height, width) / max(min(height, width), 1) > 200:
        raise MediaError(f"aspect ratio of {width}x{height} is above 200")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < config.min_pixels:
        beta = math.sqrt(config.min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _resize(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """HxWx3 uint8 -> 3xhxw uint8, bicubic with antialiasing (as qwen-omni-utils)."""
    from torchvision.transforms.v2 import functional as tvf

    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if tuple(tensor.shape[1:]) == size:
        return tensor
    resized = tvf.resize(
        tensor.unsqueeze(0).float(), list(size), interpolation=tvf.InterpolationMode.BICUBIC, antialias=True
    )
    return resized.squeeze(0).round().clamp(0, 255).to(torch.uint8)


def _video_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return None


def _last_packet_time(container, stream) -> float | None:
    """Scan packets (no decoding) for the last timestamp, for files without a duration header."""
    last = None
    for packet in container.demux(stream):
        if packet.pts is not None:
            end = packet.pts + (packet.duration or 0)
            last = end if last is None else max(last, end)
    container.seek(0)
    return None if last is None else float(last * stream.time_base)


def _select_frames(container, stream, targets: np.ndarray, origin: float, seek_gap: float):
    """Yield (target index, decoded frame) picking the frame nearest in time to each target second.

    Decodes straight through when targets are dense; seeks to the keyframe before a target when the
    gap is longer than `seek_gap` (and widens the gap if a seek turns out to land behind us).
    """
    decoder = container.decode(stream)
    prev = cur = None  # (time, frame)
    gap = seek_gap
    for index, target in enumerate(targets):
        if cur is not None and gap > 0 and target - cur[0] > gap:
            before = cur[0]
            container.seek(int((origin + target) / stream.time_base), stream=stream, backward=True)
            decoder = container.decode(stream)
            prev = cur = None
            first = next(decoder, None)
            if first is not None:
                cur = (float(first.time) - origin, first)
                if cur[0] <= before + 1e-6:
                    gap *= 2  # keyframes are sparser than the gap: seek less often
        while cur is None or cur[0] < target:
            frame = next(decoder, None)
            if frame is None:
                break
            prev, cur = cur, (float(frame.time) - origin, frame)
        if cur is None:
            raise MediaError("no decodable video frames")
        if prev is not None and cur[0] >= target and target - prev[0] <= cur[0] - target:
            yield index, prev
        else:
            yield index, cur


def decode_audio(path: str | Path, rate: int = 16000, max_seconds: float | None = None) -> np.ndarray | None:
    """The first audio stream as mono float32 at `rate` Hz, or None if the file has no audio stream."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                return None
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            limit = None if max_seconds is None else int(max_seconds * rate)
            chunks: list[np.ndarray] = []
            total = 0
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples itself (avoids gaps/jumps)
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if limit is not None and total >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1))
            # AAC decodes whole frames: drop the encoder's padding past the stream's stated duration.
            expected = None
            if stream.duration and stream.time_base:
                expected = int(round(float(stream.duration * stream.time_base) * rate))
    except av.error.FFmpegError as exc:
        raise MediaError(f"audio track unreadable: {exc}") from exc
    if not chunks:
        raise MediaError("audio stream has no decodable samples")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    if expected and 0 < expected < audio.size:
        audio = audio[:expected]
    return audio if limit is None else audio[:limit]


def load_video(path: str | Path, config: SamplingConfig | None = None, audio: bool = True) -> SampledVideo:
    """Sample frames at `config.fps` (capped at `config.max_frames`) and decode the audio track.

    Raises `MediaError` with a short reason for anything unreadable, so the runner can write an
    error row and go on.
    """
    import av

    config = config or SamplingConfig()
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"file not found: {path}")
    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise MediaError("no video stream")
            stream.thread_type = "AUTO"
            duration = _video_duration(container, stream) or _last_packet_time(container, stream)
            if duration is None:
                raise MediaError("cannot determine the video's duration")
            source_fps = float(stream.average_rate) if stream.average_rate else None
            total = stream.frames or (round(duration * source_fps) if source_fps else None)
            count, fps = plan_frames(duration, config, total)
            height = stream.codec_context.height
            width = stream.codec_context.width
            if not height or not width:
                raise MediaError("video stream has no frame size")
            size = frame_size(height, width, count, config)
            origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            targets = np.arange(count, dtype=np.float64) / fps
            frames = torch.empty((count, 3, *size), dtype=torch.uint8)
            stamps = np.empty(count, dtype=np.float64)
            last_pts, last_image = None, None
            for index, (stamp, frame) in _select_frames(
                container, stream, targets, origin, config.seek_gap_s
            ):
                if frame.pts != last_pts or last_image is None:
                    last_image = _resize(frame.to_ndarray(format="rgb24"), size)
                    last_pts = frame.pts
                frames[index] = last_image
                stamps[index] = stamp
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise MediaError(f"video unreadable: {exc}") from exc
    track = decode_audio(path, config.audio_rate, config.max_audio_seconds) if audio else None
    logger.debug("%s: %d frames at %.3f fps over %.1f s, size %s", path.name, count, fps, duration, size)
    return SampledVideo(frames, stamps, fps, duration, source_fps, track, config.audio_rate)
