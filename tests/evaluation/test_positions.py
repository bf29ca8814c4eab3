"""Long videos: the real sampling fps reaches the model, so audio and video positions of a second agree.

docs/design.md#published-code-defects: the published evaluation capped videos at 256 frames but let the processor assume 2 fps, so for
a 300 s clip the last frame (at ~299 s) got the temporal position of second 127. Here a synthetic 300 s,
25 fps clip sampled as `omnisift.media.load` samples it (the published indices, the rate they imply) goes
through `omnisift.inputs.encode` and the model's own `get_rope_index`.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from omnisift.inputs import Protocol, encode
from omnisift.media import Media, SamplingConfig, frame_count
from omnisift.models.qwen2_5_omni.fixtures import (
    AUDIO_ID,
    TINY_MAX_PIXELS,
    TINY_MIN_PIXELS,
    VIDEO_ID,
    tiny_processor,
    tiny_thinker,
)

SECONDS = 300.0
RATE = 16000


SOURCE_FPS = 25.0
SOURCE_FRAMES = int(SECONDS * SOURCE_FPS)


def _synthetic_video() -> Media:
    count = frame_count(SOURCE_FRAMES, SOURCE_FPS)
    frames = torch.randint(
        0, 255, (count, 3, 56, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    indices = torch.linspace(0, SOURCE_FRAMES - 1, count).round().long().numpy()
    stamps = indices / SOURCE_FPS  # where load puts the frames
    audio = (0.1 * np.sin(np.arange(int(SECONDS * RATE)) / 7.0)).astype(np.float32)
    fps = (count - 1) / stamps[-1]
    return Media(
        Path("synthetic.mp4"), frames, stamps, indices, fps, SECONDS, SOURCE_FPS, SOURCE_FRAMES, audio
    )


def _t_positions(video: Media):
    processor = tiny_processor(audio_chunk_length=int(SECONDS))
    sampling = SamplingConfig(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    inputs = encode(processor, video, "What happens?", Protocol(sampling=sampling))
    model = tiny_thinker()
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        None,
        inputs["video_grid_thw"],
        inputs["attention_mask"],
        use_audio_in_video=True,
        audio_seqlens=inputs["feature_attention_mask"].sum(-1),
        second_per_grids=inputs["video_second_per_grid"],
    )
    ids = inputs["input_ids"][0]
    t = positions[0, 0]
    return inputs, t[ids == VIDEO_ID], t[ids == AUDIO_ID]


def _disagreement(video: Media, video_t: torch.Tensor, audio_t: torch.Tensor) -> float:
    """Largest gap (in position ids) between a grid and the audio token of the second its frames show."""
    start = int(audio_t.min())
    grid_t = torch.unique(video_t) - start  # one t per temporal grid, in order
    worst = 0.0
    for g, t in enumerate(grid_t.tolist()):
        second = video.timestamps[2 * g]
        k = int(np.floor(second * 25))
        if k >= audio_t.numel():
            continue
        worst = max(worst, abs(t - (int(audio_t[k]) - start)))
    return worst


@pytest.fixture(scope="module")
def real_fps_positions():
    video = _synthetic_video()
    return video, *_t_positions(video)


def test_sampling_plan_for_300s():
    video = _synthetic_video()
    assert video.num_frames == 256 and video.timestamps[-1] == pytest.approx(299.96)
    assert video.fps == pytest.approx(255 / 299.96)


def test_each_grid_is_placed_at_its_first_frames_time(real_fps_positions):
    video, _, video_t, audio_t = real_fps_positions
    grid_seconds = (torch.unique(video_t) - int(audio_t.min())).double() / 25
    first_frames = torch.as_tensor(video.timestamps[0::2])
    assert grid_seconds.numel() == first_frames.numel() == 128
    assert (grid_seconds - first_frames).abs().max().item() <= 0.06


def test_real_fps_reaches_the_processor(real_fps_positions):
    video, inputs, video_t, audio_t = real_fps_positions
    assert inputs["video_grid_thw"].tolist() == [[128, 4, 4]]
    assert inputs["video_second_per_grid"].item() == pytest.approx(2 / video.fps)
    assert audio_t.numel() == int(SECONDS * 25)  # the whole 300 s of audio, 25 tokens a second


def test_audio_and_video_positions_agree(real_fps_positions):
    video, _, video_t, audio_t = real_fps_positions
    start = int(audio_t.min())
    assert audio_t.tolist() == list(range(start, start + audio_t.numel()))  # one t id per audio token
    grid_t = torch.unique(video_t) - start
    assert grid_t.numel() == 128
    assert grid_t[-1].item() == pytest.approx(25 * video.timestamps[254], abs=1)  # last grid at ~298.8 s
    assert _disagreement(video, video_t, audio_t) <= 1


def test_assuming_2fps_would_misplace_video(real_fps_positions):
    """The published defect, reproduced: the same frames declared as 2 fps end at second ~127."""
    video = real_fps_positions[0]
    wrong = replace(video, fps=2.0)
    _, video_t, audio_t = _t_positions(wrong)
    grid_t = torch.unique(video_t) - int(audio_t.min())
    assert grid_t[-1].item() == 127 * 25
    assert _disagreement(video, video_t, audio_t) > 100 * 25
