"""The synthetic layout builder and the library's layout agree with transformers' own get_rope_index."""

from __future__ import annotations

import pytest
import torch

from omnisift import build_layout
from omnisift.models.qwen2_5_omni.fixtures import tiny_thinker_config
from omnisift.models.qwen2_5_omni.synthetic import Segment, av_clip, build_batch, image, text, video


@pytest.fixture(scope="module")
def rope_model():
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    config = tiny_thinker_config()
    return Qwen2_5OmniThinkerForConditionalGeneration(config).model


def _rope_inputs(samples: list[list[Segment]]):
    grids_video, grids_image, seconds, audio_lengths = [], [], [], []
    for sample in samples:
        for seg in sample:
            if seg.kind in ("av", "video"):
                grids_video.append([seg.grid_t, seg.grid_h * 2, seg.grid_w * 2])
                seconds.append(seg.second_per_grid)
            if seg.kind == "image":
                grids_image.append([1, seg.grid_h * 2, seg.grid_w * 2])
            if seg.kind == "av":
                audio_lengths.append(4 * seg.audio_len)  # the encoder pools 4 feature frames into a token
    return (
        torch.tensor(grids_image) if grids_image else None,
        torch.tensor(grids_video) if grids_video else None,
        torch.tensor(seconds) if seconds else None,
        torch.tensor(audio_lengths) if audio_lengths else None,
    )


@pytest.mark.parametrize(
    "samples",
    [
        [[text(4), av_clip(6, 2, 3), text(5)]],
        [[text(4), av_clip(13, 2, 2), text(5)], [text(2), av_clip(3, 1, 2), text(1)]],
        [[text(3), av_clip(12, 1, 2, fps=0.5), text(2)]],
        [[text(3), av_clip(40, 2, 2, fps=0.25), text(2)], [text(3), av_clip(7, 2, 2), text(9)]],
        [[text(3), image(2, 2), text(2), av_clip(5, 2, 2), text(2)]],
        [[text(3), av_clip(3, 2, 2), text(2), av_clip(5, 1, 1), text(2)]],
    ],
)
def test_synthetic_positions_match_get_rope_index(rope_model, samples) -> None:
    batch = build_batch(samples, 8)
    image_grid, video_grid, seconds, audio_lengths = _rope_inputs(samples)
    positions, _ = rope_model.get_rope_index(
        batch.input_ids,
        image_grid_thw=image_grid,
        video_grid_thw=video_grid,
        attention_mask=batch.attention_mask,
        use_audio_in_video=True,
        audio_seqlens=audio_lengths,
        second_per_grids=seconds,
    )
    assert torch.equal(positions, batch.position_ids)


def test_video_only_positions_match_get_rope_index(rope_model) -> None:
    samples = [[text(3), video(8, 2, 2), text(4)]]
    batch = build_batch(samples, 8)
    _, video_grid, seconds, _ = _rope_inputs(samples)
    positions, _ = rope_model.get_rope_index(
        batch.input_ids,
        video_grid_thw=video_grid,
        attention_mask=batch.attention_mask,
        second_per_grids=seconds,
    )
    assert torch.equal(positions, batch.position_ids)


def test_sub_one_fps_chunk_order_matches_spec() -> None:
    # docs/design.md#layout-rules: at 0.5 fps, 12 s with 4 tokens a grid: V4 A50 V1 A50 V3 A50 V1 A50 V3 A100
    batch = build_batch([[av_clip(12, 2, 2, fps=0.5)]], 8)
    ids = batch.input_ids[0, 2:-2].tolist()
    runs, last, count = [], None, 0
    for tok in ids:
        if tok != last and last is not None:
            runs.append(("V" if last == 151656 else "A") + str(count))
            count = 0
        last, count = tok, count + 1
    runs.append(("V" if last == 151656 else "A") + str(count))
    assert runs == ["V4", "A50", "V1", "A50", "V3", "A50", "V1", "A50", "V3", "A100"]
    layout = build_layout(batch.input_ids, batch.position_ids[0], None, batch.token_ids)
    assert layout.grid_size.tolist() == [4, 4, 4]  # grids come from t values, not from token runs
    assert layout.grid_group.tolist() == [0, 0, 1]


def test_layout_groups_windows_and_padding() -> None:
    batch = build_batch([[text(2), av_clip(5, 2, 2), text(2)], [text(9)]], 8)
    layout = build_layout(batch.input_ids, batch.position_ids[0], batch.attention_mask, batch.token_ids)
    assert layout.grid_size.tolist() == [4] * 5
    assert layout.grid_group.tolist() == [0, 0, 1, 1, 2]
    assert layout.grid_batch.tolist() == [0] * 5
    starts = layout.group_t_start.tolist()
    audio_t = batch.position_ids[0].reshape(-1)[layout.audio_flat]
    group = layout.audio_group
    for q in range(3):
        lo = starts[q]
        hi = starts[q + 1] if q + 1 < 3 else float("inf")
        members = audio_t[group == q]
        assert members.numel() > 0 and (members >= lo).all() and (members < hi).all()
    assert (group >= 0).all()


def test_layout_rejects_mismatched_shapes() -> None:
    batch = build_batch([[text(2), av_clip(2, 2, 2)]], 8)
    with pytest.raises(ValueError, match="position ids"):
        build_layout(batch.input_ids, batch.position_ids[0][:, 1:], None, batch.token_ids)
