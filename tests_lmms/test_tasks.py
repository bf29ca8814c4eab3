"""The task side: documents from omnisift's question loader, scoring with omnisift's parser and scorer."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from types import ModuleType

import pytest

from omnisift.evaluation.benchmarks import MissingMediaError, load_benchmark
from omnisift.evaluation.choices import extract_choice
from omnisift.evaluation.scoring import Verdict, score_rows
from omnisift.lmms_eval import TASKS_DIR, stats


@pytest.fixture
def utils(daily_task, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The tasks' utils.py, loaded from its file as lmms-eval does, pointed at the tiny task."""
    for key, value in daily_task.env().items():
        if key.startswith("OMNISIFT_"):
            monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("omnisift_task_utils", TASKS_DIR / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stats.clear()
    return module


def test_documents_are_omnisift_questions(utils: ModuleType, daily_task) -> None:
    docs = utils.load_docs("dailyomni")
    questions = load_benchmark("dailyomni", daily_task.questions, daily_task.media)
    assert docs["question_id"] == [q.id for q in questions]
    assert docs["media"] == [str(q.media) for q in questions]
    assert [json.loads(o) for o in docs["options"]] == [q.options for q in questions]
    assert utils.doc_to_visual(docs[0]) == [str(questions[0].media)]
    assert utils.doc_to_text(docs[0]) == questions[0].prompt


def test_missing_media_stops_unless_skipped(
    utils: ModuleType, daily_task, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    (tmp_path / "v2").mkdir()
    shutil.copy(daily_task.media / "v2" / "v2_video.mp4", tmp_path / "v2")
    monkeypatch.setenv("OMNISIFT_DAILYOMNI_MEDIA", str(tmp_path))
    with pytest.raises(MissingMediaError, match="v1_video.mp4"):
        utils.load_docs("dailyomni")
    monkeypatch.setenv("OMNISIFT_SKIP_MISSING", "1")
    docs = utils.load_docs("dailyomni")
    assert docs["media"] == [str(tmp_path / "v2" / "v2_video.mp4")]
    monkeypatch.setenv("OMNISIFT_DAILYOMNI_MEDIA", str(tmp_path / "nothing"))
    with pytest.raises(MissingMediaError, match="no question"):
        utils.load_docs("dailyomni")


def test_no_question_file_names_the_variables(utils: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNISIFT_OMNIVIDEOBENCH_QUESTIONS", raising=False)
    monkeypatch.delenv("OMNISIFT_BENCHMARKS", raising=False)
    with pytest.raises(FileNotFoundError, match="OMNISIFT_OMNIVIDEOBENCH_QUESTIONS"):
        utils.load_docs("omnivideobench")


RESPONSES = ["A", "The answer is C.", "I would pick C or D", "D. a yellow ring", ""]


def test_accuracy_equals_omnisift_scoring(utils: ModuleType) -> None:
    docs = utils.load_docs("dailyomni")
    questions = load_benchmark("dailyomni", utils.question_file("dailyomni"), utils.media_root("dailyomni"))
    lmms, rows = [], []
    for i, response in enumerate(RESPONSES):
        doc, question = docs[i % len(docs)], questions[i % len(questions)]
        lmms.append(utils.process_results(doc, [response])["accuracy"])
        choice = extract_choice(response, question.options)
        rows.append(
            {
                "id": f"{question.id}-{i}",
                "status": "ok",
                "choice": choice,
                "correct": choice == question.answer,
            }
        )
    score = score_rows("dailyomni", rows)
    assert 0 < score.correct < len(rows)  # right and wrong answers both present
    assert 100.0 * utils.mean(lmms) == pytest.approx(score.accuracy)


def test_kept_fraction_metrics_come_from_the_model_record(utils: ModuleType) -> None:
    docs = utils.load_docs("dailyomni")
    assert set(utils.process_results(docs[0], ["A"])) == {"accuracy"}  # another model: no record
    stats.put(docs[0]["question_id"], stats.SampleRecord(0.25, 0.2, 0.5, 0.01, 40, 10))
    stats.put(docs[1]["question_id"], stats.SampleRecord(1.0, 1.0, 1.0, 0.0, 0, 0, error="unreadable"))
    first = utils.process_results(docs[0], ["A"])
    assert first["kept_fraction"] == {"before": 40, "after": 10}
    assert first["select_seconds"] == 0.01
    assert set(utils.process_results(docs[1], [""])) == {"accuracy"}  # a failed sample: no token counts
    items = [first["kept_fraction"], {"before": 60, "after": 30}]
    assert utils.token_weighted(items) == pytest.approx(40 / 100)


def test_caption_error_needs_a_judge(utils: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    items = [
        {
            "id": "a",
            "response": "a cat",
            "reference": "a cat sits",
            "events": ["cat", "sits"],
            "status": "ok",
        },
        {"id": "b", "response": "", "reference": "a dog", "events": ["dog"], "status": "error"},
    ]
    monkeypatch.delenv("OMNISIFT_JUDGE_URL", raising=False)
    assert math.isnan(utils.caption_error(items))

    class HalfMissed:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def __call__(self, caption, reference, events) -> Verdict:
            return Verdict(missed=1, reference_events=2, hallucinated=0, caption_events=1)

    import omnisift.evaluation.judge as judge

    monkeypatch.setattr(judge, "OpenAICompatibleJudge", HalfMissed)
    monkeypatch.setenv("OMNISIFT_JUDGE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OMNISIFT_JUDGE_MODEL", "judge")
    # The error row counts as a caption that missed everything, as in `omnisift report`.
    assert utils.caption_error(items) == pytest.approx(100.0 * (0.5 + 1.0) / 2)
