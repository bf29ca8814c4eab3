"""omnisift.media.load on generated clips whose pixels carry their source frame index."""

import logging

import numpy as np
import pytest
import torch

from omnisift import media
from omnisift.testing.clips import read_indices, write_clip, written_audio

SMALL = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}


def published(total: int, count: int) -> np.ndarray:
    return torch.linspace(0, total - 1, count).round().long().numpy()


@pytest.mark.parametrize(("seconds", "fps", "count"), [(3.0, 25.0, 6), (10.0, 30.0, 20), (140.0, 10.0, 256)])
def test_frames_are_the_published_indices(tmp_path, seconds, fps, count):
    clip = write_clip(tmp_path / "c.mkv", seconds, fps=fps, size=(32, 32), audio_layouts=())
    got = media.load(clip, **SMALL)
    total = int(round(seconds * fps))
    assert got.num_frames == count and got.source_frames == total
    expected = published(total, count)
    assert got.indices.tolist() == expected.tolist()
    assert read_indices(got.frames).tolist() == expected.tolist()  # the pixels are those source frames
    assert expected[-1] == total - 1  # the last frame is shown
    np.testing.assert_allclose(got.timestamps, expected / fps, atol=1e-3)  # mkv: ms ticks
    assert got.fps == pytest.approx((count - 1) / got.timestamps[-1])
    assert got.frames.dtype == torch.uint8 and got.frames.is_contiguous()
    assert got.audio is None and got.audio_seconds_dropped == 0.0


def test_resize_to_multiples_of_28_within_the_cap(tmp_path):
    clip = write_clip(tmp_path / "wide.mkv", 2.0, fps=10.0, size=(180, 320), audio_layouts=())
    got = media.load(clip, max_pixels=64 * 28 * 28, min_pixels=4 * 28 * 28)
    _, _, height, width = got.frames.shape
    assert height % 28 == 0 and width % 28 == 0 and height * width <= 64 * 28 * 28
    assert (height, width) == media.frame_size(180, 320, 4, max_pixels=64 * 28 * 28, min_pixels=4 * 28 * 28)
    assert read_indices(got.frames).tolist() == got.indices.tolist()


@pytest.mark.parametrize("layout", ["stereo", "5.1"])
def test_channels_are_averaged(tmp_path, layout):
    clip = write_clip(tmp_path / "s.mkv", 2.0, audio_layouts=(layout,))
    got = media.load(clip, **SMALL)
    channels = np.round(written_audio(layout, 2.0) * 32767) / 32767  # what the 16-bit PCM holds
    assert got.audio.dtype == np.float32 and got.audio.size == channels.shape[1]
    np.testing.assert_allclose(got.audio, channels.mean(0), atol=1e-4)
    summed = channels.sum(0) / np.sqrt(channels.shape[0])  # what a summing downmix would give
    assert np.std(summed) / np.std(got.audio) > 1.2  # the sum over sqrt(n) is 1.41x (stereo) louder


def test_audio_is_resampled_to_16k(tmp_path):
    clip = write_clip(tmp_path / "r.mkv", 2.0, audio_layouts=("mono",), audio_rate=48000)
    got = media.load(clip, **SMALL)
    assert got.audio.size == pytest.approx(2 * 16000, abs=16)
    assert got.audio_seconds == pytest.approx(2.0, abs=1e-3)


def test_default_audio_stream_is_taken(tmp_path):
    clip = write_clip(tmp_path / "two.mkv", 2.0, audio_layouts=("mono", "mono"), default_audio=1)
    got = media.load(clip, **SMALL)
    second = written_audio("mono", 2.0, stream=1)[0]
    np.testing.assert_allclose(got.audio, np.round(second * 32767) / 32767, atol=1e-4)


def test_audio_past_the_window_is_dropped_reported_and_warned_once(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(media, "_warned_dropped", False)
    clip = write_clip(tmp_path / "long.mkv", 5.0, fps=4.0, audio_layouts=("mono",))
    with caplog.at_level(logging.WARNING, logger="omnisift.media"):
        first = media.load(clip, audio_window_s=2.0, **SMALL)
        media.load(clip, audio_window_s=2.0, **SMALL)
    assert first.audio.size == 2 * 16000
    assert first.audio_seconds_dropped == pytest.approx(3.0, abs=0.01)
    assert sum("dropped" in r.message for r in caplog.records) == 1
    assert media.load(clip, **SMALL).audio_seconds_dropped == 0.0


def test_video_start_time_not_zero(tmp_path):
    clip = write_clip(tmp_path / "late.mkv", 4.0, fps=10.0, start_s=1.5, audio_layouts=("mono",))
    got = media.load(clip, **SMALL)
    assert got.timestamps[0] == 0.0
    assert got.indices.tolist() == published(40, 8).tolist() == read_indices(got.frames).tolist()


def test_variable_frame_rate_takes_evenly_spaced_instants(tmp_path):
    times = np.concatenate([np.arange(0, 4, 1 / 30), 4 + np.arange(0, 4, 1 / 5)])  # 30 fps then 5 fps
    clip = write_clip(tmp_path / "vfr.mkv", 8.0, fps=30.0, frame_times=times, audio_layouts=())
    got = media.load(clip, **SMALL)
    span = times[-1]
    even = np.arange(got.num_frames) * span / (got.num_frames - 1)
    assert np.abs(got.timestamps - even).max() <= 0.1 + 1e-6  # half the sparse part's frame interval
    assert read_indices(got.frames).tolist() == got.indices.tolist()


def test_no_duration_in_header(tmp_path):
    clip = write_clip(tmp_path / "stream.ts", 3.0, fps=25.0, audio_layouts=("stereo",), audio_codec="aac")
    got = media.load(clip, **SMALL)
    assert got.indices.tolist() == published(75, 6).tolist() == read_indices(got.frames).tolist()
    assert got.duration == pytest.approx(3.0, abs=0.05)
    assert got.audio.size == pytest.approx(3 * 16000, rel=0.05)


@pytest.mark.parametrize("content", [b"", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100, "truncated"])
def test_unreadable_file_names_the_file(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    if content == "truncated":
        whole = write_clip(
            tmp_path / "whole.mp4", 2.0, audio_layouts=("mono",), audio_codec="aac"
        ).read_bytes()
        content = whole[: len(whole) // 3]
    bad.write_bytes(content)
    with pytest.raises(media.MediaError, match="bad.mp4"):
        media.load(bad)


@pytest.mark.parametrize("threads", [0, -2])
def test_thread_count_below_one_is_refused(tmp_path, threads):
    clip = write_clip(tmp_path / "c.mkv", 1.0, fps=10.0, size=(32, 32), audio_layouts=())
    with pytest.raises(ValueError, match=f"threads={threads}"):
        media.load(clip, threads=threads, **SMALL)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(media.MediaError, match="nothere.mp4: file not found"):
        media.load(tmp_path / "nothere.mp4")


@pytest.mark.parametrize(
    ("total", "rate", "count"),
    [(8, 4.0, 4), (75, 25.0, 6), (263, 25.0, 20), (3200, 25.0, 256), (10, 1.0, 10), (9, 1.0, 8)],
)
def test_frame_count_follows_qwen_omni_utils(total, rate, count):
    assert media.frame_count(total, rate) == count


def _index(total: int, keyframes: list[int]) -> "media._Index":
    from fractions import Fraction

    return media._Index(np.arange(total) * 10, np.asarray(keyframes) * 10, Fraction(1, 250), 25.0)


@pytest.mark.parametrize("seed", range(20))
def test_runs_start_at_a_gop_boundary_and_cover_every_wanted_frame(seed):
    rng = np.random.default_rng(seed)
    total = int(rng.integers(20, 400))
    keyframes = sorted({0, *rng.integers(1, total, int(rng.integers(0, 12))).tolist()})
    index = _index(total, keyframes)
    wanted = np.unique(rng.choice(index.pts, int(rng.integers(2, total)), replace=False))
    threads = int(rng.integers(1, 5))
    runs = media._segments(index, wanted, threads)
    assert 1 <= len(runs) <= threads
    assert np.concatenate(runs).tolist() == wanted.tolist()
    for before, run in zip(runs, runs[1:]):
        key = media._keyframes_before(index, run[:1])[0]
        assert key in index.keyframes and key > before[-1]  # decodable with nothing from the run before


def test_runs_split_the_decoding_work_evenly():
    index = _index(1000, list(range(0, 1000, 50)))
    runs = media._segments(index, index.pts[::10], 2)
    assert [len(run) for run in runs] == [50, 50]


def test_frames_before_the_first_keyframe_decode_from_the_start():
    index = _index(100, [30, 60])
    keys = media._keyframes_before(index, np.asarray([0, 290, 300, 990]))
    assert keys.tolist() == [0, 0, 300, 600]
    assert len(media._segments(index, np.asarray([0, 100, 200]), 4)) == 1  # no keyframe between them
