"""The `omnisift` lmms-eval model in-process on the random-weight fixture ("tiny"): batching, records,
failures, and settings errors. lmms-eval hands it `Instance`s exactly like these."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from lmms_eval.api.instance import GenerationResult, Instance

from omnisift.lmms_eval import TASKS_DIR, stats
from omnisift.lmms_eval.model import LmmsEvalModel

TASK = "omnisift_dailyomni"


@pytest.fixture(scope="module")
def docs(daily_task) -> list[dict]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in daily_task.env().items():
            if key.startswith("OMNISIFT_"):
                patch.setenv(key, value)
        spec = importlib.util.spec_from_file_location("omnisift_task_utils_model", TASKS_DIR / "utils.py")
        utils: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(utils)
        return list(utils.load_docs("dailyomni"))


def _requests(docs: list[dict], gen_kwargs: dict) -> list[Instance]:
    return [
        Instance(
            request_type="generate_until",
            arguments=(doc["prompt"], dict(gen_kwargs), lambda d: [d["media"]], i, TASK, "test"),
            idx=0,
            metadata={"task": TASK, "doc_id": i, "repeats": 1},
        )
        for i, doc in enumerate(docs)
    ]


def _model(docs: list[dict], **model_args) -> LmmsEvalModel:
    model = LmmsEvalModel(pretrained="tiny", **model_args)
    model.task_dict[TASK] = {"test": docs}  # what lmms-eval's evaluator sets
    return model


@pytest.fixture(scope="module")
def model(docs) -> LmmsEvalModel:
    return _model(docs, method="omnisift", retain=0.25, batch_size="2")


def test_batches_answer_as_single_requests_do(model: LmmsEvalModel, docs: list[dict]) -> None:
    gen = {"max_new_tokens": 2, "until": []}
    stats.clear()
    batched = model.generate_until(_requests(docs, gen))
    records = [stats.get(doc["question_id"]) for doc in docs]
    assert all(isinstance(r, GenerationResult) for r in batched)
    assert all(r is not None and r.error is None and 0 < r.kept_fraction < 0.5 for r in records)
    assert all(r.token_counts.output_tokens == 2 for r in batched)
    model.batch_size = 1
    try:
        single = model.generate_until(_requests(docs, gen))
    finally:
        model.batch_size = 2
    assert [r.text for r in single] == [r.text for r in batched]
    again = [stats.get(doc["question_id"]) for doc in docs]
    assert [(r.tokens_before, r.tokens_after) for r in again] == [
        (r.tokens_before, r.tokens_after) for r in records
    ]


def test_the_task_answer_length_applies_unless_model_args_name_one(
    docs: list[dict], model: LmmsEvalModel
) -> None:
    one = model.generate_until(_requests(docs[:1], {"max_new_tokens": 3}))
    assert one[0].token_counts.output_tokens == 3
    capped = _model(docs, method="none", max_new_tokens=1)
    assert (
        capped.generate_until(_requests(docs[:1], {"max_new_tokens": 3}))[0].token_counts.output_tokens == 1
    )
    assert stats.get(docs[0]["question_id"]).kept_fraction == 1.0  # full tokens


def test_an_unreadable_video_is_one_empty_answer(model: LmmsEvalModel, docs: list[dict], tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    bad = dict(docs[1], media=str(broken))
    model.task_dict[TASK]["test"] = [docs[0], bad]
    try:
        results = model.generate_until(_requests([docs[0], bad], {"max_new_tokens": 1}))
    finally:
        model.task_dict[TASK]["test"] = docs
    assert results[1].text == "" and stats.get(bad["question_id"]).error
    assert stats.get(docs[0]["question_id"]).error is None


def test_images_are_refused_with_the_reason(model: LmmsEvalModel, docs: list[dict]) -> None:
    request = Instance(
        request_type="generate_until",
        arguments=("q", {}, lambda d: [object()], 0, TASK, "test"),
        idx=0,
        metadata={"task": TASK, "doc_id": 0, "repeats": 1},
    )
    assert model.generate_until([request])[0].text == ""
    assert "one video file" in stats.get(docs[0]["question_id"]).error


def test_unknown_method_is_refused_before_loading(docs: list[dict]) -> None:
    with pytest.raises(ValueError, match="nosuch"):
        LmmsEvalModel(pretrained="tiny", method="nosuch")


def test_qwen3_omni_fixture_runs_compressed(docs: list[dict]) -> None:
    qwen3 = LmmsEvalModel(pretrained="tiny-qwen3-omni", method="omnisift", retain=0.25, batch_size="2")
    qwen3.task_dict[TASK] = {"test": docs}
    stats.clear()
    results = qwen3.generate_until(_requests(docs, {"max_new_tokens": 2, "until": []}))
    records = [stats.get(doc["question_id"]) for doc in docs]
    assert len(results) == len(docs) and all(isinstance(r, GenerationResult) for r in results)
    assert all(r is not None and r.error is None and 0 < r.kept_fraction <= 0.25 for r in records)
