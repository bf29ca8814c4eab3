"""Document loading and scoring of the omnisift lmms-eval tasks, shared by their YAML files.

Questions come from omnisift's own loader (`omnisift.evaluation.benchmarks`: the same parsing, stable
question ids and media path rules as `omnisift eval`), answers are parsed with `extract_choice` (the
parser `omnisift eval` scores with), so both harnesses give the same accuracy on the same answers.

Where things are (environment variables, read when lmms-eval builds the task):
  OMNISIFT_<NAME>_QUESTIONS  the question file (data.jsonl) of one benchmark, e.g. OMNISIFT_DAILYOMNI_QUESTIONS
  OMNISIFT_BENCHMARKS        else: a folder holding <name>/data.jsonl (the layout of docs/question_files.md)
  OMNISIFT_<NAME>_MEDIA      the benchmark's media root (question paths are relative to it)
  OMNISIFT_MEDIA_ROOT        else: a folder holding <name>/ media roots
  OMNISIFT_SKIP_MISSING=1    skip questions whose video is missing (default: stop and name them)
  OMNISIFT_LIMIT=N           only the first N questions (as `omnisift eval --limit`)
<NAME> is DAILYOMNI, OMNIVIDEOBENCH, VIDEO_SALMONN, WORLDSENSE or VIDEOMME.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import datasets

from omnisift.evaluation.benchmarks import MissingMediaError, check_media, load_benchmark
from omnisift.evaluation.choices import extract_choice
from omnisift.lmms_eval import stats

logger = logging.getLogger("omnisift.lmms_eval.tasks")


def _setting(name: str, what: str) -> str | None:
    return os.environ.get(f"OMNISIFT_{name.upper()}_{what}") or None


def question_file(name: str) -> Path:
    """Where the question file of benchmark `name` is (see the module docstring)."""
    own = _setting(name, "QUESTIONS")
    if own:
        return Path(own)
    root = os.environ.get("OMNISIFT_BENCHMARKS")
    if root:
        return Path(root) / name / "data.jsonl"
    raise FileNotFoundError(
        f"no question file for {name}: set OMNISIFT_{name.upper()}_QUESTIONS=PATH/data.jsonl or "
        "OMNISIFT_BENCHMARKS to the folder holding <benchmark>/data.jsonl (see docs/question_files.md)"
    )


def media_root(name: str) -> Path | None:
    """The benchmark's media root; None means the question file's folder (as `omnisift eval`)."""
    own = _setting(name, "MEDIA")
    if own:
        return Path(own)
    root = os.environ.get("OMNISIFT_MEDIA_ROOT")
    return Path(root) / name if root else None


def load_docs(name: str) -> datasets.Dataset:
    """The benchmark's questions as lmms-eval documents (one row per question, stable ids)."""
    questions = load_benchmark(name, question_file(name), media_root(name))
    limit = os.environ.get("OMNISIFT_LIMIT")
    if limit:
        questions = questions[: int(limit)]
    questions = check_media(questions, skip_missing=os.environ.get("OMNISIFT_SKIP_MISSING") == "1")
    if not questions:
        raise MissingMediaError(
            f"no question of {name} has its video under {media_root(name)}; check OMNISIFT_{name.upper()}_MEDIA"
        )
    rows = [
        {
            "question_id": q.id,
            "benchmark": q.benchmark,
            "media": str(q.media),
            "prompt": q.prompt,
            "options": json.dumps(q.options, ensure_ascii=False),
            "answer": q.answer,
            "categories": json.dumps(q.categories, ensure_ascii=False),
            "events": json.dumps(list(q.events), ensure_ascii=False),
        }
        for q in questions
    ]
    return datasets.Dataset.from_list(rows)


# lmms-eval reads a placeholder file (`dataset_path: json`); these replace it with the real questions.
def process_docs_dailyomni(_: datasets.Dataset) -> datasets.Dataset:
    return load_docs("dailyomni")


def process_docs_omnivideobench(_: datasets.Dataset) -> datasets.Dataset:
    return load_docs("omnivideobench")


def process_docs_video_salmonn(_: datasets.Dataset) -> datasets.Dataset:
    return load_docs("video_salmonn")


# lmms-eval has its own `worldsense` and `videomme` tasks (their prompts, parsers and data); these two
# put omnisift's question files and parser behind the same harness, for the paper's whole table.
def process_docs_worldsense(_: datasets.Dataset) -> datasets.Dataset:
    return load_docs("worldsense")


def process_docs_videomme(_: datasets.Dataset) -> datasets.Dataset:
    return load_docs("videomme")


def doc_to_visual(doc: dict[str, Any]) -> list[str]:
    return [doc["media"]]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The question exactly as `omnisift eval` puts it (no pre/post prompt added)."""
    return doc["prompt"]


def doc_to_target(doc: dict[str, Any]) -> str:
    return doc["answer"]


def _kept(doc: dict[str, Any]) -> dict[str, Any]:
    """The model's record for this question as metrics (empty for another model or a cached answer)."""
    record = stats.get(doc["question_id"])
    if record is None or record.error is not None:
        return {}
    return record.task_metrics()


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """Multiple choice: correct when `extract_choice` (omnisift's parser) finds the answer's label."""
    response = results[0] if results else ""
    choice = extract_choice(response or "", json.loads(doc["options"]))
    return {"accuracy": float(choice == doc["answer"]), **_kept(doc)}


def process_results_caption(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """Open-ended captions: kept for the judge (see `caption_error`)."""
    record = stats.get(doc["question_id"])
    caption = {
        "id": doc["question_id"],
        "response": results[0] if results else "",
        "reference": doc["answer"],
        "events": json.loads(doc["events"]),
        "status": "error" if record is not None and record.error is not None else "ok",
    }
    return {"caption_error": caption, **_kept(doc)}


token_weighted = stats.token_weighted
mean = stats.mean
same_protocol = stats.same_protocol


def caption_error(items: list[dict[str, Any]]) -> float:
    """video-SALMONN-2 total error (miss + hallucination, percent, lower is better), judged as
    `omnisift report --judge-url` does. Needs OMNISIFT_JUDGE_URL and OMNISIFT_JUDGE_MODEL (and
    OMNISIFT_JUDGE_KEY_ENV to name the API key variable); without a judge the score is NaN, never a
    made-up number."""
    from omnisift.evaluation.judge import OpenAICompatibleJudge, judge_api_key
    from omnisift.evaluation.scoring import score_rows

    url, model = os.environ.get("OMNISIFT_JUDGE_URL"), os.environ.get("OMNISIFT_JUDGE_MODEL")
    if not url or not model:
        logger.warning(
            "video-SALMONN-2 captions not scored: set OMNISIFT_JUDGE_URL and OMNISIFT_JUDGE_MODEL "
            "(any OpenAI-compatible endpoint); the captions are in the samples log"
        )
        return math.nan
    judge = OpenAICompatibleJudge(
        url, model, api_key=judge_api_key(url, os.environ.get("OMNISIFT_JUDGE_KEY_ENV"))
    )
    rows = [{**item, "open_ended": True} for item in items]
    verdicts = {
        row["id"]: judge(row["response"], row["reference"], row["events"])
        for row in rows
        if row["status"] == "ok"
    }
    score = score_rows("video_salmonn", rows, verdicts=verdicts, open_ended=True)
    return score.caption.total if score.caption is not None else math.nan
