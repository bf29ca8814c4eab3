"""The tiny model (saved as a checkpoint folder) through lmms-eval's own command line, against
`omnisift eval` on the same questions.

One module-scoped set of runs (about two minutes on two CPU cores): budget A, budget B into the same
output folder and response cache, then budget A again; and `omnisift eval` at budget A.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from lmms_helpers import TINY_PIXELS, Checkpoint, DailyTask, read_runs, run_lmms_eval

from omnisift import CompressionConfig
from omnisift.evaluation.benchmarks import load_benchmark
from omnisift.evaluation.results import merge_rows, read_rows
from omnisift.evaluation.runner import EvalConfig, run_eval
from omnisift.evaluation.scoring import score_rows
from omnisift.inputs import Protocol
from omnisift.media import SamplingConfig

NEW_TOKENS = 1  # the checkpoint can only say "B"; one token is the whole answer


@dataclass
class Runs:
    args_a: str
    args_b: str
    shared: dict  # model_args -> (results, samples): budgets A and B, same output folder and cache
    again: tuple[dict, list[dict]]  # budget A rerun with the same cache
    eval_rows: list[dict]  # omnisift eval at budget A
    question_ids: list[str]


@pytest.fixture(scope="module")
def runs(daily_task: DailyTask, checkpoint: Checkpoint, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    cache = root / "cache"
    args_a = checkpoint.model_args(method="omnisift", retain=0.25, max_new_tokens=NEW_TOKENS)
    args_b = checkpoint.model_args(method="omnisift", retain=0.5, max_new_tokens=NEW_TOKENS)
    run_lmms_eval(daily_task, args_a, root / "shared", cache)
    run_lmms_eval(daily_task, args_b, root / "shared", cache)
    run_lmms_eval(daily_task, args_a, root / "again", cache)
    sampling = SamplingConfig(min_pixels=TINY_PIXELS[0], max_pixels=TINY_PIXELS[1])
    outcome = run_eval(
        EvalConfig(
            benchmark="dailyomni",
            questions=daily_task.questions,
            model=str(checkpoint.folder),
            out=root / "omnisift-eval",
            media_root=daily_task.media,
            compression=CompressionConfig(method="omnisift", retain=0.25, selector=str(checkpoint.selector)),
            batch_size=2,
            protocol=Protocol(max_new_tokens=NEW_TOKENS, sampling=sampling),
            workers=0,
            progress=False,
        )
    )
    again = read_runs(root / "again")
    assert list(again) == [args_a]
    questions = load_benchmark("dailyomni", daily_task.questions, daily_task.media)
    return Runs(
        args_a=args_a,
        args_b=args_b,
        shared=read_runs(root / "shared"),
        again=again[args_a],
        eval_rows=merge_rows(read_rows(outcome.bench_dir)),
        question_ids=[q.id for q in questions],
    )


def _response(sample: dict) -> str:
    value = sample["filtered_resps"]
    return value[0] if isinstance(value, list) else value


def test_results_carry_accuracy_kept_fraction_and_selection_time(runs: Runs) -> None:
    results, samples = runs.shared[runs.args_a]
    metrics = results["results"]["omnisift_dailyomni"]
    assert metrics["accuracy,none"] == 0.25  # "B" to questions answered A, B, C, D
    assert 0.0 < metrics["kept_fraction,none"] < 0.5  # retain=0.25 of the audio+video tokens
    assert metrics["select_seconds,none"] > 0.0
    assert results["throughput"]["avg_kept_fraction"] == pytest.approx(
        sum(s["kept_fraction"]["after"] / s["kept_fraction"]["before"] for s in samples) / len(samples)
    )
    # The preset and the effective values the answers were made under (the model's own frame bounds).
    assert json.loads(metrics["protocol,none"]) == {
        "preset": "omnisift-paper",
        "max_pixels": TINY_PIXELS[1],
        "min_pixels": TINY_PIXELS[0],
        "max_frames": 256,
        "fps": 2.0,
        "system_prompt": None,
        "max_new_tokens": NEW_TOKENS,
        "unparsable": "wrong",
    }
    assert len(samples) == 4
    for sample in samples:  # logged per sample
        kept = sample["kept_fraction"]
        assert 0 < kept["after"] < kept["before"]
        assert sample["select_seconds"] > 0.0
        assert _response(sample) == "B"
        assert sample["token_counts"][0]["output_tokens"] == NEW_TOKENS


def test_same_answers_and_same_score_as_omnisift_eval(runs: Runs) -> None:
    results, samples = runs.shared[runs.args_a]
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
        # Same prompt and media: the same prefill length (text tokens plus kept media tokens).
        assert sample["token_counts"][0]["input_tokens"] == kept["after"] + tokens["text"]
    score = score_rows("dailyomni", list(rows.values()))
    metrics = results["results"]["omnisift_dailyomni"]
    assert 100.0 * metrics["accuracy,none"] == pytest.approx(score.accuracy)
    assert metrics["kept_fraction,none"] == pytest.approx(score.retained)


def test_two_budgets_give_two_result_sets(runs: Runs) -> None:
    assert set(runs.shared) == {runs.args_a, runs.args_b}
    (results_a, _), (results_b, samples_b) = runs.shared[runs.args_a], runs.shared[runs.args_b]
    kept_a = results_a["results"]["omnisift_dailyomni"]["kept_fraction,none"]
    kept_b = results_b["results"]["omnisift_dailyomni"]["kept_fraction,none"]
    assert kept_b > kept_a
    # Budget B ran the model on every question (a cached answer carries no kept fraction), although
    # budget A had just filled the same cache with answers to the same questions.
    assert all("kept_fraction" in sample for sample in samples_b)


def test_cache_serves_a_rerun_of_the_same_budget(runs: Runs) -> None:
    """The cache is live: the separation of the two budgets above is not a cache that does nothing."""
    _, samples = runs.again
    _, first = runs.shared[runs.args_a]
    assert [_response(s) for s in samples] == [_response(s) for s in first] == ["B"] * 4
    assert all("kept_fraction" not in sample for sample in samples)  # no model call, no record
