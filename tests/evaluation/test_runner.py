import json

import pytest
from evaluation_helpers import with_compression

from omnisift.evaluation.loading import load_compressed
from omnisift.evaluation.report import collect_runs
from omnisift.evaluation.results import RunMetaMismatch, merge_rows, read_rows
from omnisift.evaluation.runner import EvalConfig, run_eval
from omnisift.evaluation.scoring import score_rows
from omnisift.inputs import Protocol

FAST = Protocol(max_new_tokens=3)


@pytest.fixture(scope="module")
def tiny():
    return load_compressed("tiny", None)


def _config(name, question_files, media_root, out, **kw):
    kw.setdefault("protocol", FAST)
    kw.setdefault("progress", False)
    kw.setdefault("workers", 0)  # in-process; test_scores_known_by_construction covers worker processes
    return EvalConfig(
        benchmark=name,
        questions=question_files[name],
        media_root=media_root,
        model="tiny",
        out=out,
        **with_compression(kw),
    )


@pytest.mark.parametrize("name", ["dailyomni", "worldsense", "videomme", "omnivideobench", "video_salmonn"])
def test_end_to_end_on_tiny_model(name, question_files, media_root, tmp_path, tiny):
    """The first three questions of each file: two readable clips, then a corrupt (or missing) one."""
    config = _config(name, question_files, media_root, tmp_path, batch_size=2, skip_missing=True, limit=3)
    outcome = run_eval(config, loaded=tiny)
    rows = read_rows(outcome.shard_file)
    expected = 3
    if name == "dailyomni":
        expected -= 1  # its missing video is skipped before the run
        assert outcome.skipped_missing == 1
    assert len(rows) == outcome.written == expected
    ok = [r for r in rows if r["status"] == "ok"]
    errors = [r for r in rows if r["status"] == "error"]
    assert len(ok) == 2 and len(errors) == (0 if name == "dailyomni" else 1)
    for row in ok:
        assert isinstance(row["response"], str)
        assert row["tokens"]["video_before"] > 0 and row["tokens"]["audio_before"] > 0
        assert row["tokens"]["video_after"] == row["tokens"]["video_before"]  # method none: full tokens
        assert row["timings"]["generate_s"] > 0 and row["timings"]["batch_size"] in (1, 2)
        assert row["video"]["has_audio"] is True
    if name == "video_salmonn":
        assert all(r["open_ended"] and r["reference"] and r["events"] for r in rows)
        assert score_rows(name, rows).score is None  # no judge: not scored
    meta = json.loads((outcome.bench_dir / "meta.json").read_text())
    assert meta["random_weights"] is True and meta["method"] == "none"


def test_corrupt_video_gives_error_row_and_run_goes_on(question_files, media_root, tmp_path, scripted):
    outcome = run_eval(_config("videomme", question_files, media_root, tmp_path), loaded=scripted)
    rows = read_rows(outcome.shard_file)
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "ok", "ok", "ok"]
    assert "unreadable" in rows[2]["error"] and rows[2]["correct"] is False


def test_rerun_skips_finished_rows_and_survives_a_kill(question_files, media_root, tmp_path, scripted):
    first = run_eval(_config("worldsense", question_files, media_root, tmp_path, limit=3), loaded=scripted)
    assert first.written == 3
    second = run_eval(_config("worldsense", question_files, media_root, tmp_path), loaded=scripted)
    assert (second.already_done, second.written) == (3, 3)
    third = run_eval(_config("worldsense", question_files, media_root, tmp_path), loaded=None)
    assert third.written == 0  # nothing left: returns before loading any model

    # A kill while writing the last row leaves half a line: that question is rerun, nothing else.
    lines = third.shard_file.read_text().splitlines(keepends=True)
    third.shard_file.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    fourth = run_eval(_config("worldsense", question_files, media_root, tmp_path), loaded=scripted)
    assert fourth.written == 1
    rows = merge_rows(read_rows(fourth.shard_file))
    assert [r["index"] for r in rows] == list(range(6)) and len({r["id"] for r in rows}) == 6


def test_retry_errors_reruns_only_error_rows(question_files, media_root, tmp_path, scripted):
    run_eval(_config("videomme", question_files, media_root, tmp_path), loaded=scripted)
    again = run_eval(
        _config("videomme", question_files, media_root, tmp_path, retry_errors=True), loaded=scripted
    )
    assert again.written == 1 and again.errors == 1


def test_two_shards_merge_into_the_same_report_as_one_run(
    question_files, media_root, tmp_path, scripted, monkeypatch
):
    whole = tmp_path / "whole"
    split = tmp_path / "split"
    run_eval(_config("videomme", question_files, media_root, whole), loaded=scripted)
    run_eval(_config("videomme", question_files, media_root, split, shard=0, num_shards=2), loaded=scripted)
    monkeypatch.setenv("RANK", "1")  # the second shard takes its rank from the launcher's environment
    monkeypatch.setenv("WORLD_SIZE", "2")
    outcome = run_eval(_config("videomme", question_files, media_root, split), loaded=scripted)
    assert outcome.shard_file.name == "shard-001-of-002.jsonl"
    files = sorted(p.name for p in outcome.bench_dir.glob("shard-*.jsonl"))
    assert files == ["shard-000-of-002.jsonl", "shard-001-of-002.jsonl"]

    def keyed(root):
        rows = merge_rows(read_rows(next(root.glob("*/videomme"))))
        return [(r["id"], r["status"], r["response"], r.get("tokens")) for r in rows]

    assert keyed(split) == keyed(whole)
    one, two = collect_runs(whole), collect_runs(split)
    assert one[0].scores["videomme"].as_dict() == two[0].scores["videomme"].as_dict()


def test_scores_known_by_construction(question_files, media_root, tmp_path, scripted):
    """The scripted model answers the letter in each question's [[X]] marker."""
    config = _config(
        "videomme", question_files, media_root, tmp_path, batch_size=4, protocol=Protocol(), workers=2
    )
    outcome = run_eval(config, loaded=scripted)
    assert max(scripted.thinker.calls) > 1  # batched generate was used
    rows = merge_rows(read_rows(outcome.bench_dir))
    assert [r["choice"] for r in rows] == ["A", "C", None, "D", "B", None]
    score = score_rows("videomme", rows)
    # right: q0 (A), q3 (D), q4 (B); wrong: q1 (C vs B), q2 (corrupt video), q5 (no letter)
    assert (score.rows, score.correct, score.errors, score.unparsed) == (6, 3, 1, 1)
    assert score.accuracy == pytest.approx(50.0)
    durations = {k: v.accuracy for k, v in score.categories["duration"].items()}
    assert durations == {"short": 100.0, "medium": 50.0, "long": 0.0}
    tasks = {k: (v.correct, v.total) for k, v in score.categories["task"].items()}
    assert tasks == {"Counting Problem": (2, 3), "OCR Problems": (1, 3)}


def test_video_without_audio_track_runs_video_only(tmp_path, media_root, scripted):
    rows = [
        {"video_path": v, "answer": "A", "prompt": "[[A]]\nA. x\nB. y", "duration": "short"}
        for v in ("silent.mp4", "a.mp4", "silent.mp4")
    ]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = EvalConfig(
        benchmark="videomme",
        questions=questions,
        media_root=media_root,
        model="tiny",
        out=tmp_path,
        batch_size=3,
        progress=False,
        workers=0,
    )
    outcome = run_eval(config, loaded=scripted)
    rows = merge_rows(read_rows(outcome.shard_file))
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert [r["video"]["has_audio"] for r in rows] == [False, True, False]
    assert rows[0]["tokens"]["audio_before"] == 0 and rows[1]["tokens"]["audio_before"] > 0
    assert sorted(scripted.thinker.calls) == [1, 2]  # batches never mix audio and no-audio videos


def test_other_configuration_in_same_run_folder_is_refused(question_files, media_root, tmp_path, scripted):
    run_eval(_config("worldsense", question_files, media_root, tmp_path, run_name="x"), loaded=scripted)
    with pytest.raises(RunMetaMismatch, match="another configuration"):
        run_eval(
            _config("worldsense", question_files, media_root, tmp_path, run_name="x", method="omnisift"),
            loaded=scripted,
        )


def test_omnisift_attached_records_token_savings(question_files, media_root, tmp_path):
    config = _config(
        "worldsense", question_files, media_root, tmp_path, method="omnisift", limit=2, batch_size=2
    )
    outcome = run_eval(config)
    rows = read_rows(outcome.shard_file)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        tokens = row["tokens"]
        assert tokens["video_after"] < tokens["video_before"]
        assert tokens["audio_after"] < tokens["audio_before"]
        assert 0.0 < row["retained"] < 1.0
        assert row["timings"]["select_s"] > 0


def test_videos_are_prepared_here_until_a_worker_is_up_then_by_the_worker(media_root, scripted, monkeypatch):
    """The model is not left waiting for a worker's imports at the start; then the worker takes over,
    and the order of the questions is kept. The worker's start is gated by the test (no sleeps), so the
    outcome does not depend on how busy the machine is."""
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from omnisift.evaluation import runner
    from omnisift.evaluation.benchmarks import Question
    from omnisift.media import SamplingConfig

    gate = threading.Event()
    starts = []

    class GatedSpawner(ThreadPoolExecutor):
        """The runner's spawner thread, which starts the worker only once the test opens the gate."""

        def submit(self, fn, /, *args, **kwargs):
            def gated():
                assert gate.wait(timeout=600), "the test never opened the gate"
                return fn(*args, **kwargs)

            future = super().submit(gated)
            starts.append(future)
            return future

    monkeypatch.setattr(runner, "ThreadPoolExecutor", GatedSpawner)
    questions = [
        Question(
            id=str(i),
            benchmark="videomme",
            media=media_root / f"{'ab'[i % 2]}.mp4",
            prompt="?",
            options={},
            answer="",
        )
        for i in range(6)
    ]
    sampling = SamplingConfig(min_pixels=scripted.min_pixels, max_pixels=scripted.max_pixels)
    protocol = Protocol(max_new_tokens=3, sampling=sampling)
    prepared = runner._prefetch(questions, scripted, protocol, workers=1)
    here = [next(prepared), next(prepared)]  # the worker cannot be up: its start waits for the gate
    assert [p.pid for p in here] == [os.getpid()] * 2 and all(p.inputs is not None for p in here)
    gate.set()
    starts[0].result(timeout=600)  # the worker is up (seconds of imports on a spawned process)
    rest = list(prepared)
    assert [p.question.id for p in [*here, *rest]] == [str(i) for i in range(6)]
    assert all(p.error is None for p in rest)
    assert {p.pid for p in rest}.isdisjoint({os.getpid()}) and len(rest) == 4
