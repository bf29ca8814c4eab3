"""No model family is assumed: the functional API takes the family's token ids (or the model) or refuses."""

from __future__ import annotations

import pytest
import torch

from omnisift import VisionGuidedAudioSelector, build_layout, keep_mask, select_tokens
from omnisift.models.qwen3_omni_moe import synthetic as qwen3
from omnisift.testing.reference import literal_keep_mask

HIDDEN = 16


@pytest.fixture(scope="module")
def batch():
    return qwen3.build_batch([[qwen3.text(3), qwen3.av_clip(8.0), qwen3.text(2)]], HIDDEN)


def test_without_token_ids_every_entry_refuses(batch) -> None:
    # Before: Qwen2.5-Omni's ids were assumed and a Qwen3-Omni batch kept 104 of 104 audio tokens, silently.
    kwargs = {k: v for k, v in batch.as_kwargs().items() if k != "token_ids"}
    for call in (
        lambda: keep_mask(**kwargs, method="random"),
        lambda: select_tokens(**kwargs, method="random"),
        lambda: build_layout(batch.input_ids, batch.position_ids[0], batch.attention_mask),
        lambda: literal_keep_mask(**kwargs, selector=VisionGuidedAudioSelector(HIDDEN, 32, 4)),
    ):
        with pytest.raises(ValueError, match="token_ids.*no default"):
            call()


def test_with_the_familys_ids_audio_is_dropped(batch) -> None:
    keep = keep_mask(**batch.as_kwargs(), method="random", video_drop=0.5, audio_drop=0.3)
    audio = batch.input_ids == batch.token_ids.audio
    total = int(audio.sum())
    assert total > 0
    assert int((keep & audio).sum()) < total
    assert torch.equal(keep, keep_mask(**batch.as_kwargs(), method="random", video_drop=0.5, audio_drop=0.3))
