from pathlib import Path

import pytest
from evaluation_helpers import MC_ITEMS, OPTIONS

from omnisift.evaluation.benchmarks import (
    BENCHMARKS,
    MissingMediaError,
    check_media,
    find_questions_file,
    load_benchmark,
    parse_options,
)

SHARED = Path("/work/shared/benchmarks")
EXPECTED_ROWS = {
    "dailyomni": 1197,
    "worldsense": 3172,
    "videomme": 2700,
    "omnivideobench": 1000,
    "video_salmonn": 483,
}


@pytest.mark.parametrize("name", ["dailyomni", "worldsense", "videomme", "omnivideobench"])
def test_multiple_choice_formats(name, question_files, media_root):
    questions = load_benchmark(name, question_files[name], media_root)
    assert len(questions) == len(MC_ITEMS)
    assert len({q.id for q in questions}) == len(questions)
    for question, (_, answer, _) in zip(questions, MC_ITEMS, strict=True):
        assert question.options == dict(zip("ABCD", OPTIONS, strict=True))
        assert question.answer == answer
        assert question.media.is_relative_to(media_root)
        assert question.prompt
        assert question.categories
    if name == "dailyomni":
        assert questions[0].media == media_root / "a" / "a_video.mp4"
        assert questions[1].categories["task"] == "Reasoning"
    if name == "videomme":
        assert [q.categories["duration"] for q in questions[:3]] == ["short", "medium", "long"]
    if name == "omnivideobench":  # no ready prompt: the human turn is the prompt
        assert questions[0].prompt.startswith("Question 0")


def test_open_ended_format(question_files, media_root):
    questions = load_benchmark("video-salmonn-2", question_files["video_salmonn"], media_root)
    assert [q.benchmark for q in questions] == ["video_salmonn"] * 3
    first = questions[0]
    assert first.open_ended and first.options == {}
    assert "<image>" not in first.prompt and first.prompt.startswith("Describe")
    assert first.answer.startswith("Reference caption 0")
    assert first.events[1] == "A bright square moves left to right"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Q?\nA. one\nB. two\nC. three", {"A": "one", "B": "two", "C": "three"}),
        ("Q?\nA.one\nB.two\nC.three\nD.four\n", {"A": "one", "B": "two", "C": "three", "D": "four"}),
        ("Q?\nA one\nB two", {"A": "one", "B": "two"}),
        ("Q?\n(A) one\n(B) two", {"A": "one", "B": "two"}),
        ("Q?\nA. x\nB. y\nA. z\nB. w", {"A": "x", "B": "y", "C": "z", "D": "w"}),
        ("A victim said something. Why?\nA. p\nB. q\nC. r\nD. s", {"A": "p", "B": "q", "C": "r", "D": "s"}),
        (
            "Q?\nA.Horse neighing\nB Horse chewing\nC.Hooves",
            {"A": "Horse neighing", "B": "Horse chewing", "C": "Hooves"},
        ),
        ("Q?\nA. one\nB. two\nThe best answer is:", {"A": "one", "B": "two"}),
        ("No options here.", {}),
    ],
)
def test_parse_options(text, expected):
    assert parse_options(text) == expected


def test_missing_media_reported_before_run(question_files, media_root):
    questions = load_benchmark("dailyomni", question_files["dailyomni"], media_root)
    with pytest.raises(MissingMediaError) as info:
        check_media(questions)
    message = str(info.value)
    assert (
        "1 of 6 questions" in message and "missing_dir_video.mp4" in message and "--skip-missing" in message
    )
    kept = check_media(questions, skip_missing=True)
    assert len(kept) == 5 and all(q.media.is_file() for q in kept)


def test_unknown_benchmark_and_bad_answer(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("mmlu", tmp_path)
    bad = tmp_path / "data.jsonl"
    bad.write_text('{"video_path": "x.mp4", "answer": "E", "prompt": "Q\\nA. a\\nB. b"}\n')
    with pytest.raises(ValueError, match="not an option"):
        load_benchmark("videomme", tmp_path)


def test_find_questions_file(tmp_path, monkeypatch):
    (tmp_path / "worldsense").mkdir()
    (tmp_path / "worldsense" / "data.jsonl").write_text("")
    monkeypatch.setenv("OMNISIFT_BENCHMARKS", str(tmp_path))
    assert find_questions_file("worldsense") == tmp_path / "worldsense" / "data.jsonl"
    with pytest.raises(FileNotFoundError, match="--questions"):
        find_questions_file("videomme", tmp_path / "nowhere")


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared benchmark metadata not present")
@pytest.mark.parametrize("name", BENCHMARKS)
def test_shipped_question_files(name):
    questions = load_benchmark(name, SHARED / name / "data.jsonl")
    assert len(questions) == EXPECTED_ROWS[name]
    if name != "video_salmonn":
        assert all(q.answer in q.options and len(q.options) in (3, 4) for q in questions)
    else:
        assert all(q.events and q.answer for q in questions)
