"""The tiny model through lmms-eval's own command line, against `omnisift eval` on the same questions.

One module-scoped set of runs (about two minutes on two CPU cores): budget A, budget B into the same
output folder and response cache, then budget A again; and `omnisift eval` at budget A.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from lmms_helpers import MAX_NEW_TOKENS, DailyTask, read_runs, run_lmms_eval

from omnisift.evaluation.benchmarks import load_benchmark
from omnisift.evaluation.inputs import Protocol
from omnisift.evaluation.results import merge_rows, read_rows
from omnisift.evaluation.runner import EvalConfig, run_eval
from omnisift.evaluation.scoring import score_rows

ARGS_A = f"pretrained=tiny,method=omnisift,retain=0.25,max_new_tokens={MAX_NEW_TOKENS}"
ARGS_B = f"pretrained=tiny,method=omnisift,retain=0.5,max_new_tokens={MAX_NEW_TOKENS}"


@dataclass
class Runs:
    shared: dict  # model_args -> (results, samples): budgets A and B, same output folder and cache
    again: tuple[dict, list[dict]]  # budget A rerun with the same cache
    eval_rows: list[dict]  # omnisift eval at budget A
    question_ids: list[str]


@pytest.fixture(scope="module")
def runs(daily_task: DailyTask, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    cache = root / "cache"
    run_lmms_eval(daily_task, ARGS_A, root / "shared", cache)
    run_lmms_eval(daily_task, ARGS_B, root / "shared", cache)
    run_lmms_eval(daily_task, ARGS_A, root / "again", cache)
    outcome = run_eval(
        EvalConfig(
            benchmark="dailyomni",
            questions=daily_task.questions,
            model="tiny",
            out=root / "omnisift-eval",
            media_root=daily_task.media,
            method="omnisift",
            retain=0.25,
            batch_size=2,
            protocol=Protocol(max_new_tokens=MAX_NEW_TOKENS),
            workers=0,
            progress=False,
        )
    )
    again = read_runs(root / "again")
    assert list(again) == [ARGS_A]
    questions = load_benchmark("dailyomni", daily_task.questions, daily_task.media)
    return Runs(
        shared=read_runs(root / "shared"),
        again=again[ARGS_A],
        eval_rows=merge_rows(read_rows(outcome.bench_dir)),
        question_ids=[q.id for q in questions],
    )


def _response(sample: dict) -> str:
    value = sample["filtered_resps"]
    return value[0] if isinstance(value, list) else value


def test_results_carry_accuracy_kept_fraction_and_selection_time(runs: Runs) -> None:
    results, samples = runs.shared[ARGS_A]
    metrics = results["results"]["omnisift_dailyomni"]
    assert 0.0 <= metrics["accuracy,none"] <= 1.0
    assert 0.0 < metrics["kept_fraction,none"] < 0.5  # retain=0.25 of the audio+video tokens
    assert metrics["select_seconds,none"] > 0.0
    assert results["throughput"]["avg_kept_fraction"] == pytest.approx(
        sum(s["kept_fraction"]["after"] / s["kept_fraction"]["before"] for s in samples) / len(samples)
    )
    assert len(samples) == 4
    for sample in samples:  # logged per sample
        kept = sample["kept_fraction"]
        assert 0 < kept["after"] < kept["before"]
        assert sample["select_seconds"] > 0.0
        assert sample["token_counts"][0]["output_tokens"] <= MAX_NEW_TOKENS


def test_same_answers_and_same_score_as_omnisift_eval(runs: Runs) -> None:
    results, samples = runs.shared[ARGS_A]
    rows = {row["id"]: row for row in runs.eval_rows}
    assert [row["status"] for row in rows.values()] == ["ok"] * 4
    for sample in samples:
        row = rows[runs.question_ids[sample["doc_id"]]]
        assert _response(sample) == row["response"]
        assert sample["accuracy"] == float(bool(row["correct"]))
        kept = sample["kept_fraction"]
        tokens = row["tokens"]
        assert kept["before"] == tokens["video_before"] + tokens["audio_before"]
        assert kept["after"] == tokens["video_after"] + tokens["audio_after"]
    score = score_rows("dailyomni", list(rows.values()))
    metrics = results["results"]["omnisift_dailyomni"]
    assert 100.0 * metrics["accuracy,none"] == pytest.approx(score.accuracy)
    assert metrics["kept_fraction,none"] == pytest.approx(score.retained)


def test_two_budgets_give_two_result_sets(runs: Runs) -> None:
    assert set(runs.shared) == {ARGS_A, ARGS_B}
    (results_a, _), (results_b, samples_b) = runs.shared[ARGS_A], runs.shared[ARGS_B]
    kept_a = results_a["results"]["omnisift_dailyomni"]["kept_fraction,none"]
    kept_b = results_b["results"]["omnisift_dailyomni"]["kept_fraction,none"]
    assert kept_b > kept_a
    # Budget B ran the model on every question (a cached answer carries no kept fraction), although
    # budget A had just filled the same cache with answers to the same questions.
    assert all("kept_fraction" in sample for sample in samples_b)


def test_cache_serves_a_rerun_of_the_same_budget(runs: Runs) -> None:
    """The cache is live: the separation of the two budgets above is not a cache that does nothing."""
    _, samples = runs.again
    _, first = runs.shared[ARGS_A]
    assert [_response(s) for s in samples] == [_response(s) for s in first]
    assert all("kept_fraction" not in sample for sample in samples)
