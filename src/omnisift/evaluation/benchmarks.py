"""Question-file loaders for the five audio-video benchmarks (docs/design.md#evaluation-protocol).

A "benchmark" here is a question set a model is scored on; speed measurements are `omnisift bench`
(`omnisift.benchmarking`, docs/design.md#terms).

Each benchmark ships its questions in a different JSONL layout; this module turns all five into one
`Question` record so the runner, the scorer and the report never look at raw fields.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..media_check import MissingMediaError, describe_missing, missing_media
from ..textfiles import jsonl_objects

__all__ = [
    "BENCHMARKS",
    "MissingMediaError",
    "Question",
    "QuestionFileError",
    "check_media",
    "find_questions_file",
    "load_benchmark",
    "parse_options",
    "resolve_media",
]

logger = logging.getLogger(__name__)

BENCHMARKS: tuple[str, ...] = ("dailyomni", "worldsense", "videomme", "omnivideobench", "video_salmonn")
OPEN_ENDED: frozenset[str] = frozenset({"video_salmonn"})
_ALIASES = {
    "daily-omni": "dailyomni",
    "daily_omni": "dailyomni",
    "video-mme": "videomme",
    "video_mme": "videomme",
    "omni-video-bench": "omnivideobench",
    "omnivideo": "omnivideobench",
    "video-salmonn": "video_salmonn",
    "video-salmonn-2": "video_salmonn",
    "video_salmonn_2": "video_salmonn",
    "videosalmonn": "video_salmonn",
}
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])(?:\s*[\.\)．:：]\s*|\s+)(.*?)\s*$")
_PLACEHOLDER = re.compile(r"<(?:image|video|audio)>\s*\n?")


@dataclass(frozen=True)
class Question:
    """One benchmark question, normalised across the five file layouts."""

    id: str
    benchmark: str
    media: Path
    prompt: str
    options: dict[str, str]
    answer: str
    categories: dict[str, str] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    index: int = 0

    @property
    def open_ended(self) -> bool:
        return not self.options


def canonical_name(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return key


def parse_options(text: str) -> dict[str, str]:
    """Options listed one per line at the end of a question ("A. x", "A.x", "(A) x", "A x").

    Takes the last run of consecutive option lines that starts at "A". A run whose labels repeat
    (three OmniVideoBench rows read A, B, A, B) is relabelled by position, which is how their answers
    are keyed.
    """
    lines = text.splitlines()
    best: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        match = _OPTION_LINE.match(lines[i])
        if not match or match.group(1) != "A" or not match.group(2):
            i += 1
            continue
        run = [(match.group(1), match.group(2))]
        j = i + 1
        while j < len(lines):
            nxt = _OPTION_LINE.match(lines[j])
            if not nxt or not nxt.group(2):
                break
            if nxt.group(1) == "A" and len(run) == 1:
                run = [(nxt.group(1), nxt.group(2))]  # "A victim said ...\nA. He ...": restart
                j += 1
                continue
            expected = chr(ord("A") + len(run))
            if nxt.group(1) != expected and nxt.group(1) not in {label for label, _ in run}:
                break
            run.append((nxt.group(1), nxt.group(2)))
            j += 1
        if len(run) >= 2:
            best = run
        i = j
    if not best:
        return {}
    labels = [label for label, _ in best]
    positional = [chr(ord("A") + k) for k in range(len(best))]
    if labels != positional:
        logger.warning("option labels %s relabelled by position as %s", labels, positional)
    return {pos: body for pos, (_, body) in zip(positional, best, strict=True)}


def _human_turn(row: dict[str, Any]) -> str:
    for turn in row.get("conversations", []):
        if turn.get("from") in ("human", "user"):
            return _PLACEHOLDER.sub("", turn["value"]).strip()
    raise ValueError("row has no human turn in 'conversations'")


def _gpt_turn(row: dict[str, Any]) -> str:
    for turn in row.get("conversations", []):
        if turn.get("from") in ("gpt", "assistant"):
            return turn["value"].strip()
    raise ValueError("row has no gpt turn in 'conversations'")


def _parse_row(name: str, row: dict[str, Any]) -> tuple[str, str, dict[str, str], str, dict[str, str]]:
    """(media path, prompt, options, answer, categories) for one raw row."""
    if name == "dailyomni":
        video_id = row["video_id"]
        if not isinstance(video_id, str) or not video_id:
            raise ValueError(f"video_id {video_id!r} is not a non-empty string")
        options = parse_options("\n".join(row["Choice"])) or parse_options(row["prompt"])
        categories = {
            "task": row.get("Type"),
            "duration": row.get("video_duration"),
            "video_category": row.get("video_category"),
        }
        return f"{video_id}/{video_id}_video.mp4", row["prompt"], options, row["Answer"], categories
    if name == "worldsense":
        options = parse_options(row.get("question", "")) or parse_options(row["prompt"])
        return row["video_path"], row["prompt"], options, row["answer"], {"domain": row.get("domain")}
    if name == "videomme":
        categories = {
            "duration": row.get("duration"),
            "domain": row.get("domain"),
            "task": row.get("task_type"),
            "sub_category": row.get("sub_category"),
        }
        return row["video_path"], row["prompt"], parse_options(row["prompt"]), row["answer"], categories
    if name == "omnivideobench":
        prompt = _human_turn(row)
        categories = {
            "task": row.get("question_type"),
            "audio": row.get("audio_type"),
            "video_type": row.get("video_type"),
        }
        return row["videos"], prompt, parse_options(prompt), _gpt_turn(row), categories
    if name == "video_salmonn":
        return row["video"], _human_turn(row), {}, _gpt_turn(row), {}
    raise AssertionError(name)


_OWN_ID_FIELDS = ("question_id", "qid", "id")


class QuestionFileError(ValueError):
    """A question file row that cannot be used (the message names the file and line)."""


def _question_id(name: str, row: dict[str, Any], seen: dict[str, int]) -> str:
    """The benchmark's own question id when the row has one, else a hash of the row's content.

    Either way the id does not move when other lines of the file are edited, added or removed, so a
    rerun never pairs an old answer with a different question. Identical rows get -2, -3, ...
    """
    own = next((row[k] for k in _OWN_ID_FIELDS if isinstance(row.get(k), (str, int)) and row[k] != ""), None)
    if own is not None:
        base = f"{name}-{own}"
    else:
        text = json.dumps(row, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        base = f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base}-{seen[base]}"


def resolve_media(root: Path, media: Any, where: str) -> Path:
    """`root / media`, refusing anything but a relative path without `..` (so it stays under `root`).

    The check is on the text the question file gives: symlinks the user placed under the media root
    (e.g. to a shared video store) keep working; a question file cannot point outside it.
    """
    if not isinstance(media, str) or not media.strip():
        raise QuestionFileError(
            f"{where}: the video path is {media!r}, not a non-empty string; fix or remove that line"
        )
    relative = Path(media)
    if relative.is_absolute() or ".." in relative.parts:
        raise QuestionFileError(
            f"{where}: video path {media!r} is absolute or contains '..', which would leave --media-root "
            f"{root}; question files may only name files under it"
        )
    return root / relative


def load_benchmark(name: str, path: str | Path, media_root: str | Path | None = None) -> list[Question]:
    """Load a benchmark question file (or the folder holding `data.jsonl`) as `Question` records.

    Media paths are resolved against `media_root` (default: the question file's folder) and must stay
    inside it. Ids are the benchmark's own question id, else a hash of the row (see `_question_id`).
    Raises `QuestionFileError` naming the file and line of a row that cannot be used.
    """
    name = canonical_name(name)
    path = Path(path)
    if path.is_dir():
        path = path / "data.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"question file {path} not found; pass the benchmark's data.jsonl")
    root = Path(media_root) if media_root is not None else path.parent
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for number, where, row in jsonl_objects(path, "question file", QuestionFileError):
        try:
            media, prompt, options, answer, categories = _parse_row(name, row)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise QuestionFileError(f"{where}: cannot read a {name} row ({exc!r})") from exc
        for label, value in (("prompt", prompt), ("answer", answer)):
            if not isinstance(value, str):
                raise QuestionFileError(
                    f"{where}: the {label} is {value!r} ({type(value).__name__}), not text; "
                    'write it as a string, e.g. "B"'
                )
        media_path = resolve_media(root, media, where)
        if name not in OPEN_ENDED:
            answer = answer.strip().upper()
            if not options:
                raise QuestionFileError(f"{where}: no options found in the question")
            if answer not in options:
                raise QuestionFileError(f"{where}: answer {answer!r} is not an option {sorted(options)}")
        questions.append(
            Question(
                id=_question_id(name, row, seen),
                benchmark=name,
                media=media_path,
                prompt=prompt,
                options=options,
                answer=answer,
                categories={k: str(v) for k, v in categories.items() if v not in (None, "")},
                events=tuple(row.get("events", ())),
                index=number - 1,
            )
        )
    if not questions:
        raise QuestionFileError(f"{path} holds no questions; pass the benchmark's data.jsonl")
    logger.info("loaded %d %s questions from %s", len(questions), name, path)
    return questions


def check_media(questions: list[Question], skip_missing: bool = False, examples: int = 5) -> list[Question]:
    """Report missing media before a run starts; drop them if `skip_missing`, else raise.

    Several questions often share one video, so each distinct path is checked once.
    """
    paths = [q.media for q in questions]
    missing = missing_media(paths)
    if not missing:
        return questions
    message = describe_missing(paths, missing, "questions", examples)
    if not skip_missing:
        raise MissingMediaError(
            f"{message}. Check --media-root (paths are relative to it) or pass --skip-missing."
        )
    logger.warning("%s; skipping them (--skip-missing)", message)
    return [q for q in questions if q.media not in missing]


def find_questions_file(name: str, media_root: str | Path | None = None) -> Path:
    """Where the question file of `name` is when the user did not pass one.

    Looks in $OMNISIFT_BENCHMARKS/<name>/data.jsonl, then <media_root>/data.jsonl.
    """
    name = canonical_name(name)
    candidates = []
    if os.environ.get("OMNISIFT_BENCHMARKS"):
        candidates.append(Path(os.environ["OMNISIFT_BENCHMARKS"]) / name / "data.jsonl")
    if media_root is not None:
        candidates.append(Path(media_root) / "data.jsonl")
        candidates.append(Path(media_root) / name / "data.jsonl")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates) or "nothing"
    raise FileNotFoundError(
        f"no question file for {name} (tried {tried}); pass --questions PATH/data.jsonl "
        "or set OMNISIFT_BENCHMARKS to the folder holding <benchmark>/data.jsonl"
    )
