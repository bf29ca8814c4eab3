"""Fixtures of the lmms-eval backend tests (run inside .venv-lmms: scripts/test_lmms_eval.sh)."""

from __future__ import annotations

import json

import pytest
import torch
from lmms_helpers import OPTIONS, VIDEOS, Checkpoint, DailyTask, prompt

from omnisift.models.qwen2_5_omni.fixtures import tiny_processor, tiny_thinker
from omnisift.selector import VisionGuidedAudioSelector, save_selector
from omnisift.testing.clips import make_clip


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


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    """The tiny thinker saved as a checkpoint folder (with its processor) and a selector file.

    Its output layer can only say "B": the random tiny model's answers otherwise decode to nothing
    (its ids fall outside the 266-token test tokenizer), which would make matching answers and
    accuracies vacuous. Answering "B" to questions whose answers are A, B, C, D scores exactly 25%.
    """
    folder = tmp_path_factory.mktemp("tiny-checkpoint")
    thinker = tiny_thinker(seed=0)
    processor = tiny_processor()
    letter = processor.tokenizer.convert_tokens_to_ids("B")
    with torch.no_grad():
        weight = thinker.lm_head.weight
        others = torch.ones(weight.shape[0], dtype=torch.bool)
        others[letter] = False
        weight[others] = 0.0
        weight[letter] = weight[letter].sign() * 10.0 * weight[letter].abs().max()
    thinker.save_pretrained(folder)
    processor.save_pretrained(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        selector = VisionGuidedAudioSelector(thinker.config.text_config.hidden_size)
    return Checkpoint(folder=folder, selector=save_selector(selector, folder / "selector.safetensors"))
