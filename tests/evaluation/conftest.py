"""Fixtures for the evaluation tests (helpers live in evaluation_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from evaluation_helpers import ScriptedThinker, write_questions

from omnisift.testing.clips import make_clip, write_silent_clip


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    """Clips of 1-3 s with frames and audio, a corrupt file and a clip without audio."""
    root = tmp_path_factory.mktemp("media")
    make_clip(root / "a.mp4", 1.0, tone_hz=330.0)
    make_clip(root / "b.mp4", 2.0, tone_hz=440.0)
    make_clip(root / "c.mp4", 3.0, fps=2.0, tone_hz=550.0)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a real video" * 64)
    write_silent_clip(root / "silent.mp4", 2.0)
    for vid in ("a", "b"):  # Daily-Omni layout: <video_id>/<video_id>_video.mp4
        (root / vid).mkdir()
        (root / vid / f"{vid}_video.mp4").write_bytes((root / f"{vid}.mp4").read_bytes())
    return root


@pytest.fixture(scope="session")
def question_files(tmp_path_factory, media_root) -> dict[str, Path]:
    return write_questions(tmp_path_factory.mktemp("questions"), media_root)


@pytest.fixture
def scripted():
    """A CompressedModel with the scripted thinker and the tiny processor."""
    from omnisift.evaluation.loading import CompressedModel
    from omnisift.models.qwen2_5_omni.fixtures import TINY_MAX_PIXELS, TINY_MIN_PIXELS, tiny_processor

    processor = tiny_processor()
    return CompressedModel(
        thinker=ScriptedThinker(processor.tokenizer),
        processor=processor,
        handle=None,
        label="scripted",
        random_weights=True,
        device=torch.device("cpu"),
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
    )
