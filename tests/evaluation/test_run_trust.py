"""Runs you can trust (issue 13): identity, stale rows, media containment, argument and input checks."""

import json
import threading

import pytest
from evaluation_helpers import eval_config

from omnisift.evaluation import runner
from omnisift.evaluation.benchmarks import QuestionFileError, load_benchmark
from omnisift.evaluation.cli import main
from omnisift.evaluation.report import write_report
from omnisift.evaluation.results import ResultFileError, RunMetaMismatch, read_rows
from omnisift.evaluation.run_identity import claim_run
from omnisift.evaluation.runner import run_eval
from omnisift.inputs import Protocol
from omnisift.media import SamplingConfig


def _rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _mc(video="a.mp4", answer="A", marker="A"):
    return {"video_path": video, "answer": answer, "prompt": f"[[{marker}]]\nA. x\nB. y", "domain": "d"}


# 1. identity fixed at creation -----------------------------------------------------------------------


def test_second_configuration_refused_even_before_the_first_wrote_a_row(
    question_files, media_root, tmp_path, monkeypatch
):
    """The first run claims the folder while its model loads (no rows yet); the second is refused."""

    def slow_load(*args, **kwargs):
        raise RuntimeError("still loading")  # stands in for a run that is loading (or was killed loading)

    monkeypatch.setattr(runner, "load_compressed", slow_load)
    with pytest.raises(RuntimeError, match="still loading"):
        run_eval(
            eval_config(question_files["worldsense"], media_root, tmp_path, method="omnisift", retain=0.5)
        )
    with pytest.raises(RunMetaMismatch, match=r"another configuration.*retain: 0\.5 -> 0\.25"):
        run_eval(
            eval_config(question_files["worldsense"], media_root, tmp_path, method="omnisift", retain=0.25)
        )
    meta = json.loads((tmp_path / "run" / "worldsense" / "meta.json").read_text())
    assert meta["retain"] == 0.5  # what produced (and will produce) the rows is what is recorded


def test_concurrent_claims_with_different_identities_let_exactly_one_win(tmp_path):
    outcomes = []
    barrier = threading.Barrier(8)

    def claim(i):
        barrier.wait()
        try:
            claim_run(tmp_path / "b", {"retain": i % 2}, {"note": i})
            outcomes.append(i % 2)
        except RunMetaMismatch:
            outcomes.append("refused")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = {o for o in outcomes if o != "refused"}
    assert len(winners) == 1 and outcomes.count("refused") == 4


# 2. stale rows ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    ["question file edited", "other question file", "seed", "method parameter", "fps", "max new tokens"],
)
def test_rerun_with_anything_that_changes_answers_is_refused(change, media_root, tmp_path, scripted):
    questions = _rows(tmp_path / "q.jsonl", [_mc(), _mc("b.mp4", "B", "B")])
    base = dict(method="random", retain=0.5)
    run_eval(eval_config(questions, media_root, tmp_path, **base), loaded=scripted)
    kw = dict(base)
    if change == "question file edited":
        _rows(questions, [_mc(), _mc("b.mp4", "A", "B")])
    elif change == "other question file":
        questions = _rows(tmp_path / "other.jsonl", [_mc("c.mp4"), _mc("b.mp4", "B", "B")])
    elif change == "seed":
        kw["seed"] = 1
    elif change == "method parameter":
        kw["retain"] = 0.4
    elif change == "fps":
        kw["protocol"] = Protocol(max_new_tokens=3, sampling=SamplingConfig(fps=1.0))
    else:
        kw["protocol"] = Protocol(max_new_tokens=4)
    with pytest.raises(RunMetaMismatch, match="another configuration"):
        run_eval(eval_config(questions, media_root, tmp_path, **kw), loaded=scripted)


def test_question_ids_do_not_move_when_other_lines_change(tmp_path, media_root):
    path = _rows(tmp_path / "q.jsonl", [_mc(), _mc("b.mp4", "B", "B")])
    before = [q.id for q in load_benchmark("worldsense", path, media_root)]
    _rows(path, [_mc("c.mp4", "B", "B"), _mc(), {**_mc("b.mp4", "B", "B")}])
    after = [q.id for q in load_benchmark("worldsense", path, media_root)]
    assert after[1:] == before and after[0] not in before
    own = _rows(tmp_path / "own.jsonl", [{**_mc(), "question_id": "q-7"}])
    assert load_benchmark("worldsense", own, media_root)[0].id == "worldsense-q-7"


# 7. media paths stay under --media-root -------------------------------------------------------------


@pytest.mark.parametrize(
    "name,row",
    [
        ("worldsense", _mc("../a.mp4")),
        ("worldsense", _mc("/etc/hostname")),
        ("worldsense", _mc("sub/../../a.mp4")),
        (
            "dailyomni",
            {"video_id": "../../../../etc", "Choice": ["A. x", "B. y"], "Answer": "A", "prompt": "q"},
        ),
    ],
)
def test_media_paths_outside_the_media_root_are_refused(name, row, tmp_path, media_root):
    path = _rows(tmp_path / "q.jsonl", [row])
    with pytest.raises(QuestionFileError, match=rf"{path}:1: video path .* (outside|--media-root)"):
        load_benchmark(name, path, media_root)


# 8. bad arguments are refused up front ---------------------------------------------------------------


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--limit", "-1"], "--limit must be at least 1"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--fps", "0"], "fps=0.0 is not allowed: a finite number > 0"),
        (["--fps", "-2"], "fps=-2.0 is not allowed: a finite number > 0"),
        (["--max-frames", "0"], "max_frames=0 is not allowed: a whole number >= 2"),
        (["--max-new-tokens", "0"], "max_new_tokens=0 is not allowed: a whole number >= 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--questions", "EMPTY"], "holds no questions"),
    ],
)
def test_bad_arguments_exit_2_before_any_work(flags, message, question_files, media_root, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    flags = [str(empty) if f == "EMPTY" else f for f in flags]
    argv = ["eval", "--benchmark", "worldsense", "--media-root", str(media_root), "--model", "tiny"]
    argv += [
        "--questions",
        str(question_files["worldsense"]),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert main(argv + flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing was written


# 9. unclear errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"video_path": "a.mp4", "answer": "A", ', "not valid JSON"),
        ('["a.mp4", "A"]', "must be a JSON object, got list"),
        (json.dumps({**_mc(), "video_path": None}), "video path is None"),
        (json.dumps({**_mc(), "answer": 1}), "answer is 1 \\(int\\)"),
        (json.dumps({"answer": "A", "prompt": "x\nA. a\nB. b"}), "cannot read a worldsense row.*video_path"),
    ],
)
def test_malformed_question_rows_name_file_and_line(line, message, tmp_path, media_root):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(_mc()) + "\n" + line + "\n")
    with pytest.raises(QuestionFileError, match=rf"{path}:2: .*{message}"):
        load_benchmark("worldsense", path, media_root)


def test_corrupt_meta_json_is_a_clear_error(question_files, media_root, tmp_path, scripted, capsys):
    outcome = run_eval(
        eval_config(question_files["worldsense"], media_root, tmp_path, limit=1), loaded=scripted
    )
    meta = outcome.bench_dir / "meta.json"
    meta.write_text('{"method": "none", ')
    with pytest.raises(RunMetaMismatch, match=rf"{meta} is not valid JSON.*delete that run folder"):
        run_eval(eval_config(question_files["worldsense"], media_root, tmp_path), loaded=scripted)


def test_result_row_without_id_names_file_and_line(question_files, media_root, tmp_path, scripted):
    outcome = run_eval(
        eval_config(question_files["worldsense"], media_root, tmp_path, limit=2), loaded=scripted
    )
    with outcome.shard_file.open("a") as handle:
        handle.write(json.dumps({"status": "ok", "response": "A"}) + "\n")
    with pytest.raises(ResultFileError, match=rf"{outcome.shard_file}:3: not a result row"):
        read_rows(outcome.bench_dir)


def test_report_goes_on_past_a_broken_run(question_files, media_root, tmp_path, scripted):
    good = run_eval(
        eval_config(question_files["worldsense"], media_root, tmp_path, run_name="good"), loaded=scripted
    )
    bad = run_eval(
        eval_config(question_files["videomme"], media_root, tmp_path, run_name="bad"), loaded=scripted
    )
    (bad.bench_dir / "meta.json").write_text("{")
    text, _, runs = write_report(tmp_path)
    assert [r.name for r in runs] == ["good"] and good.bench_dir.parent.name == "good"
    assert "Left out" in text and "bad" in text.split("Left out")[1]
