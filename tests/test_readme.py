"""The README's Python example (video file -> inputs -> generate) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- readme-example: video-to-generate -->"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    assert MARKER in text, "the README lost its runnable example"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER) :], re.S)
    assert block is not None
    return block.group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(_example(), str(README), "exec"), scope)
    inputs, out, handle = scope["inputs"], scope["out"], scope["handle"]
    assert inputs["use_audio_in_video"] is True
    assert out.shape[1] > inputs["input_ids"].shape[1]  # it generated
    assert isinstance(scope["answer"], str)
    stats = handle.last_stats[0]
    assert stats.video_after < stats.video_before and stats.audio_after == stats.audio_before
    assert torch.equal(inputs["attention_mask"], torch.ones_like(inputs["attention_mask"]))
