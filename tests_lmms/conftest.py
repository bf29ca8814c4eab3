"""Fixtures of the lmms-eval backend tests (run inside .venv-lmms: scripts/test_lmms_eval.sh)."""

from __future__ import annotations

import json

import pytest
from lmms_helpers import OPTIONS, VIDEOS, DailyTask, prompt

from omnisift.models.qwen2_5_omni.fixtures import make_clip


@pytest.fixture(scope="session")
def daily_task(tmp_path_factory: pytest.TempPathFactory) -> DailyTask:
    """Four Daily-Omni questions on three generated 2-second clips with an audio tone."""
    root = tmp_path_factory.mktemp("daily")
    media = root / "media"
    rows = []
    for i, video in enumerate(VIDEOS):
        clip = media / video / f"{video}_video.mp4"
        if not clip.exists():
            clip.parent.mkdir(parents=True)
            make_clip(clip, seconds=2.0, fps=4, size=(56, 56), tone_hz=300 + 150 * i)
        question = f"Question {i}: what is shown?"
        rows.append(
            {
                "Question": question,
                "Choice": [f"{'ABCD'[k]}. {text}" for k, text in enumerate(OPTIONS)],
                "Answer": "ABCD"[i],
                "video_id": video,
                "Type": "Reasoning",
                "video_category": "Sports",
                "video_duration": "30s",
                "prompt": prompt(question),
            }
        )
    questions = root / "data.jsonl"
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return DailyTask(questions=questions, media=media, home=root / "hf")
