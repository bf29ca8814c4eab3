import numpy as np
import pytest

from omnisift.evaluation.media import MediaError, SamplingConfig, frame_size, load_video, plan_frames

TINY_PIXELS = SamplingConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)


@pytest.mark.parametrize(
    ("duration", "frames", "fps"),
    [
        (1.0, 4, 4.0),  # at least 4 frames
        (3.0, 6, 2.0),
        (10.5, 20, 20 / 10.5),  # even count
        (128.0, 256, 2.0),
        (300.0, 256, 256 / 300),  # capped: the real rate is below 2 fps
        (3600.0, 256, 256 / 3600),
    ],
)
def test_plan_frames(duration, frames, fps):
    count, rate = plan_frames(duration, SamplingConfig())
    assert count == frames
    assert rate == pytest.approx(fps)


def test_plan_frames_respects_source_frame_count():
    assert plan_frames(10.0, SamplingConfig(), total_frames=9) == (8, 0.8)
    with pytest.raises(MediaError):
        plan_frames(0.0, SamplingConfig())


def test_frame_size_caps_pixels():
    config = SamplingConfig()
    h, w = frame_size(1080, 1920, 256, config)
    assert h % 28 == 0 and w % 28 == 0
    assert h * w <= 256 * 28 * 28
    assert abs(w / h - 16 / 9) < 0.1
    assert frame_size(112, 112, 4, config) == (336, 336)  # raised to min_pixels, like qwen-omni-utils


def test_load_video_frames_timestamps_and_audio(media_root):
    video = load_video(media_root / "b.mp4", TINY_PIXELS)
    assert video.num_frames == 4 and video.fps == pytest.approx(2.0)
    assert video.frames.shape == (4, 3, 112, 112)
    np.testing.assert_allclose(video.timestamps, [0.0, 0.5, 1.0, 1.5])
    assert video.audio is not None and video.audio.dtype == np.float32
    assert video.audio.size == pytest.approx(2.0 * 16000, abs=400)
    assert video.frames[0].float().std() > 0  # real pixels, not zeros


def test_load_video_without_audio(media_root):
    video = load_video(media_root / "silent.mp4", TINY_PIXELS)
    assert video.audio is None and video.num_frames == 4


def test_audio_truncated_to_limit(media_root):
    config = SamplingConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16, max_audio_seconds=1.0)
    video = load_video(media_root / "c.mp4", config)
    assert video.audio.size == 16000


@pytest.mark.parametrize("name", ["corrupt.mp4", "nothere.mp4"])
def test_unreadable_video_raises_media_error(media_root, name):
    with pytest.raises(MediaError):
        load_video(media_root / name, TINY_PIXELS)


@pytest.mark.slow
def test_long_clip_decodes_at_real_fps(tmp_path):
    """A real 300 s file (tiny resolution): 256 frames spread over the whole clip, not the first 128 s."""
    from omnisift.models.qwen2_5_omni.fixtures import make_clip

    path = make_clip(tmp_path / "long.mp4", 300.0, fps=1.0, size=(32, 32))
    video = load_video(path, TINY_PIXELS)
    assert video.num_frames == 256
    assert video.fps == pytest.approx(256 / 300, rel=1e-3)
    assert video.timestamps[-1] > 295
    assert np.all(np.abs(video.timestamps - np.arange(256) / video.fps) <= 0.5 + 1e-6)
    assert video.audio.size == pytest.approx(300 * 16000, rel=1e-3)
