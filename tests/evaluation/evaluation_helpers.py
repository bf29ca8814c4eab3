"""Helpers of the evaluation tests: generated clips, question files in each benchmark's format, a scripted model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

LETTERS = "ABCD"


def _options_text(question: str, options: list[str], sep: str = ". ") -> str:
    return question + "\n" + "\n".join(f"{LETTERS[i]}{sep}{text}" for i, text in enumerate(options))


def _prompt(question: str, options: list[str]) -> str:
    return (
        "Select the best answer to the following multiple-choice question based on the video. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\n"
        + _options_text(question, options)
        + "\nThe best answer is:"
    )


# Each question: (video, answer, marker). The marker tells the scripted test model what to answer, so
# the correct count is known by construction: questions whose marker equals their answer are right.
MC_ITEMS = [
    ("a", "A", "A"),
    ("b", "B", "C"),
    ("corrupt", "C", "C"),
    ("c", "D", "D"),
    ("a", "B", "B"),
    ("b", "C", "none"),
]
OPTIONS = ["a red ball", "a blue cube", "a green cone", "a yellow ring"]


def _question(i: int, marker: str) -> str:
    return f"Question {i}: what is shown? [[{marker}]]"


def _dailyomni_row(i: int, vid: str, answer: str, q: str) -> dict:
    vid = vid if vid != "c" else "a"  # Daily-Omni clips live in <id>/<id>_video.mp4 (a and b only)
    return {
        "Question": q,
        "Choice": [f"{LETTERS[k]}. {t}" for k, t in enumerate(OPTIONS)],
        "Answer": answer,
        "video_id": vid if vid != "corrupt" else "missing_dir",
        "Type": ["Event Sequence", "Reasoning"][i % 2],
        "video_category": "Sports",
        "video_duration": ["30s", "60s"][i % 2],
        "prompt": _prompt(q, OPTIONS),
    }


def _worldsense_row(i: int, vid: str, answer: str, q: str) -> dict:
    return {
        "video_path": f"{vid}.mp4",
        "duration": "60s",
        "domain": ["Music", "Sports"][i % 2],
        "question": _options_text(q, OPTIONS),
        "answer": answer,
        "prompt": _prompt(q, OPTIONS),
    }


def _videomme_row(i: int, vid: str, answer: str, q: str) -> dict:
    return {
        "video_id": vid,
        "video_path": f"{vid}.mp4",
        "duration": ["short", "medium", "long"][i % 3],
        "domain": "Knowledge",
        "task_type": ["Counting Problem", "OCR Problems"][i % 2],
        "sub_category": "Humanity & History",
        "answer": answer,
        "prompt": _prompt(q, OPTIONS),
    }


def _omnivideobench_row(i: int, vid: str, answer: str, q: str) -> dict:
    sep = "." if i % 2 else " "  # OmniVideoBench mixes "A.text" and "A text"
    return {
        "dataset": "OmniVideoBench",
        "videos": f"{vid}.mp4",
        "video_type": "Vlog",
        "duration": "00:03",
        "question_type": ["counting", "causal reasoning"][i % 2],
        "audio_type": "Speech",
        "conversations": [
            {"from": "human", "value": _options_text(q, OPTIONS, sep=sep) + "\n"},
            {"from": "gpt", "value": answer},
        ],
    }


MC_ROWS = {
    "dailyomni": _dailyomni_row,
    "worldsense": _worldsense_row,
    "videomme": _videomme_row,
    "omnivideobench": _omnivideobench_row,
}
"""Each multiple-choice benchmark's row layout: `row(index, video, answer, question)`."""


def write_questions(root: Path, media_root: Path) -> dict[str, Path]:
    """A small question file per benchmark in that benchmark's own layout."""
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for benchmark, row in MC_ROWS.items():
        rows = [row(i, vid, answer, _question(i, marker)) for i, (vid, answer, marker) in enumerate(MC_ITEMS)]
        files[benchmark] = _dump(root / f"{benchmark}.jsonl", rows)

    rows = []
    for i, vid in enumerate(["a", "b", "corrupt"]):
        rows.append(
            {
                "video": f"{vid}.mp4",
                "conversations": [
                    {"from": "human", "value": "<image>\nDescribe the video in detail, audio included."},
                    {"from": "gpt", "value": f"Reference caption {i}: a tone plays while a square moves."},
                ],
                "events": ["A tone plays", "A bright square moves left to right", f"Event {i}"],
            }
        )
    files["video_salmonn"] = _dump(root / "video_salmonn.jsonl", rows)
    return files


def _dump(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class ScriptedThinker(torch.nn.Module):
    """Stands in for the thinker: answers "The answer is X." where the prompt carries "[[X]]".

    Lets the tests know every expected score by construction while the real pipeline (decoding,
    processor, batching, parsing, rows, scoring) runs unchanged.
    """

    def __init__(self, tokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[int] = []

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        self.calls.append(input_ids.shape[0])
        replies = []
        for row in input_ids:
            prompt = self.tokenizer.decode(row.tolist(), skip_special_tokens=True)
            match = re.search(r"\[\[(\w+)\]\]", prompt)
            marker = match.group(1) if match else "none"
            text = f"The answer is {marker}." if marker in LETTERS else "I do not know."
            if "Describe the video" in prompt:
                text = "A tone plays while a square moves."
            ids = self.tokenizer.encode(text, add_special_tokens=False)[:max_new_tokens]
            replies.append(ids + [self.tokenizer.eos_token_id])
        width = max(len(r) for r in replies)
        pad = self.tokenizer.pad_token_id
        new = torch.tensor([r + [pad] * (width - len(r)) for r in replies], dtype=input_ids.dtype)
        return torch.cat([input_ids, new], dim=1)


COMPRESSION_KEYS = ("method", "video_drop", "audio_drop", "retain", "selector", "seed", "method_params")


def with_compression(kw: dict) -> dict:
    """Test shorthand: `method=..., retain=...` keywords become the run's `CompressionConfig`
    (no method, or "none": full tokens)."""
    from omnisift import CompressionConfig

    parts = {key: kw.pop(key) for key in COMPRESSION_KEYS if key in kw}
    method = parts.pop("method", "none")
    if method not in ("none", "full"):
        kw["compression"] = CompressionConfig(method=method, **parts)
    return kw


def eval_config(questions: Path, media_root: Path, out: Path, **kw):
    """A fast in-process worldsense run of the tiny model (3 new tokens, no progress bar, run "run"); `kw`
    overrides those and may use the `with_compression` shorthand. Worker processes: tests/evaluation/test_runner.py."""
    from omnisift.evaluation.runner import EvalConfig
    from omnisift.inputs import Protocol

    kw.setdefault("protocol", Protocol(max_new_tokens=3))
    kw.setdefault("progress", False)
    kw.setdefault("run_name", "run")
    kw.setdefault("workers", 0)
    settings = with_compression(kw)
    return EvalConfig(
        benchmark="worldsense", questions=questions, media_root=media_root, model="tiny", out=out, **settings
    )
