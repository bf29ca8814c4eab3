"""Shared fixtures of the inner-LLM tests: an 8-layer tiny thinker (drops 4/5/6, late 7) and clips."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from inner_helpers import LAYERS, PROMPTS  # noqa: E402

from omnisift.models.qwen2_5_omni import fixtures as tiny  # noqa: E402
from omnisift.testing.clips import make_clip  # noqa: E402


@pytest.fixture(scope="module")
def deep_thinker():
    return tiny.tiny_thinker(seed=0, num_layers=LAYERS)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("inner_clips")
    return [make_clip(root / "a.mp4", 5.0, tone_hz=330), make_clip(root / "b.mp4", 3.0, tone_hz=660)]


@pytest.fixture(scope="module")
def batch(processor, clips):
    return tiny.processor_inputs(processor, clips, PROMPTS)


@pytest.fixture(scope="module")
def singles(processor, clips):
    return [tiny.processor_inputs(processor, [clip], [prompt]) for clip, prompt in zip(clips, PROMPTS)]
