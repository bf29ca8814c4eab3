import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from evaluation_helpers import with_compression

from omnisift.evaluation.judge import JudgeError, OpenAICompatibleJudge, parse_verdict
from omnisift.evaluation.report import collect_runs, format_table, write_report
from omnisift.evaluation.results import ResultWriter, merge_rows, read_rows
from omnisift.evaluation.runner import EvalConfig, run_eval
from omnisift.evaluation.scoring import Verdict, score_rows
from omnisift.inputs import Protocol


def _row(i, status="ok", correct=False, choice="A", duration="short", video=(10, 5), audio=(20, 10)):
    return {
        "id": f"b-{i}",
        "index": i,
        "status": status,
        "correct": correct,
        "choice": choice,
        "categories": {"duration": duration},
        "tokens": {
            "video_before": video[0],
            "video_after": video[1],
            "audio_before": audio[0],
            "audio_after": audio[1],
        },
    }


def test_score_rows_counts_errors_and_unparsed_as_wrong():
    rows = [
        _row(0, correct=True),
        _row(1, correct=True, duration="long"),
        _row(2, choice=None),
        _row(3, status="error", choice=None, duration="long"),
    ]
    score = score_rows("videomme", rows)
    assert score.accuracy == 50.0 and score.errors == 1 and score.unparsed == 1
    assert {k: v.accuracy for k, v in score.categories["duration"].items()} == {"short": 50.0, "long": 50.0}
    assert score.retained == pytest.approx(45 / 90)  # error rows carry no tokens


def test_report_columns_give_input_layer_averaged_and_flops_budgets():
    from omnisift.evaluation.report import RunReport

    inner = _row(0)
    inner["tokens"] |= {"layer_avg_kept_video": 0.2, "layer_avg_kept_audio": 0.4, "prefill_flops_ratio": 0.3}
    pre = _row(1)  # a row written before the accounting fields: its input budget holds at every layer
    score = score_rows("videomme", [inner, pre])
    assert score.layer_avg_kept == pytest.approx((0.2 * 10 + 0.4 * 20 + 5 + 10) / 60)
    assert score.flops_ratio == pytest.approx(0.3)  # only the row that measured it
    assert score.as_dict()["layer_avg_kept"] == pytest.approx(score.layer_avg_kept)
    run = RunReport(name="r", meta={"method": "seats", "retain": 0.25}, scores={"videomme": score})
    header, _, line = format_table([run]).splitlines()[:3]
    cells = dict(zip((c.strip() for c in header.split("|")), (c.strip() for c in line.split("|"))))
    assert cells["Kept %"] == "50.0"
    assert cells["Layer-avg kept %"] == f"{100 * score.layer_avg_kept:.1f}"
    assert cells["Prefill FLOPs %"] == "30.0"


def test_merge_prefers_success_then_latest():
    rows = [
        {"id": "x", "status": "ok", "finished_at": 1.0, "response": "old"},
        {"id": "x", "status": "error", "finished_at": 2.0},
        {"id": "x", "status": "ok", "finished_at": 3.0, "response": "new"},
        {"id": "y", "status": "error", "finished_at": 1.0},
    ]
    merged = {r["id"]: r for r in merge_rows(rows)}
    assert merged["x"]["response"] == "new" and merged["y"]["status"] == "error"


def test_writer_seals_a_partial_line(tmp_path):
    path = tmp_path / "shard-000-of-001.jsonl"
    path.write_text('{"id": "a", "status": "ok"}\n{"id": "b", "sta')
    with ResultWriter(path) as writer:
        writer.write({"id": "c", "status": "ok"})
    assert [r["id"] for r in read_rows(path)] == ["a", "c"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"missed": 2, "caption_events": 5, "hallucinated": 1}', Verdict(2, 4, 1, 5)),
        ('```json\n{"missed": 9, "caption_events": 3, "hallucinated": 7}\n```', Verdict(4, 4, 3, 3)),
        ('Sure. {"missed": "1", "caption_events": 2, "hallucinated": 0}', Verdict(1, 4, 0, 2)),
    ],
)
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply, reference_events=4) == expected


def test_parse_verdict_rejects_non_verdicts():
    with pytest.raises(JudgeError):
        parse_verdict("I think it is fine.", 3)
    with pytest.raises(JudgeError):
        parse_verdict('{"missed": 1}', 3)


@pytest.fixture
def judge_server():
    """A local OpenAI-compatible endpoint that always finds 1 missed event and 1 of 4 hallucinated."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("Authorization"), body))
            content = '{"missed": 1, "caption_events": 4, "hallucinated": 1}'
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", seen
    server.shutdown()


def _run(name, question_files, media_root, out, loaded, **kw):
    config = EvalConfig(
        benchmark=name,
        questions=question_files[name],
        media_root=media_root,
        model="tiny",
        out=out,
        progress=False,
        protocol=Protocol(max_new_tokens=64),
        workers=0,
        **with_compression(kw),
    )
    return run_eval(config, loaded=loaded)


def test_captions_not_scored_without_judge_then_scored_and_cached(
    question_files, media_root, tmp_path, scripted, judge_server
):
    _run("video_salmonn", question_files, media_root, tmp_path, scripted)
    runs = collect_runs(tmp_path)
    assert runs[0].scores["video_salmonn"].score is None
    assert "not scored" in format_table(runs)

    url, seen = judge_server
    judge = OpenAICompatibleJudge(url, "fake-judge", api_key="k")
    text, _, runs = write_report(tmp_path, judge=judge)
    caption = runs[0].scores["video_salmonn"].caption
    # two captions judged (1/3 missed, 1/4 hallucinated); the corrupt video's error row misses everything
    assert caption.judged == 2 and caption.pending == 0
    assert caption.miss == pytest.approx(100 * (1 / 3 + 1 / 3 + 1) / 3)
    assert caption.hallucination == pytest.approx(100 * 0.5 / 3)
    assert f"{caption.total:.1f}" in text and "fake-judge" in text
    path, auth, body = seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k" and body["model"] == "fake-judge"
    assert "A bright square moves left to right" in body["messages"][-1]["content"]

    calls = len(seen)
    _, _, again = write_report(tmp_path)  # no judge given: cached verdicts are reused, nothing is asked
    assert len(seen) == calls == 2
    assert again[0].scores["video_salmonn"].caption.total == pytest.approx(caption.total)


def test_report_table_and_figure(question_files, media_root, tmp_path, scripted):
    _run("videomme", question_files, media_root, tmp_path, scripted)
    _run("worldsense", question_files, media_root, tmp_path, scripted)
    _run("videomme", question_files, media_root, tmp_path, scripted, run_name="other-full")
    text, figure, runs = write_report(tmp_path, paper=True)
    assert len(runs) == 2
    header = text.splitlines()[0]
    assert header.index("WorldSense") < header.index("Video-MME")  # the paper's column order
    assert "| 50.0" in text and "random weights" in text.lower()
    assert "Paper, Table 1" in text and "49.7" in text
    assert "| short " in text and "| long " in text  # Video-MME per duration
    assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "report.json").read_text())
    assert data[0]["scores"]["videomme"]["accuracy"] == pytest.approx(50.0)
    assert (tmp_path / "report.md").is_file()


def test_report_on_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="omnisift eval"):
        write_report(tmp_path)


def test_judge_key_goes_to_https_or_where_named_and_is_never_logged(
    question_files, media_root, tmp_path, scripted, judge_server, monkeypatch, caplog, capsys
):
    from omnisift.evaluation.cli import main

    _run("video_salmonn", question_files, media_root, tmp_path, scripted)
    url, seen = judge_server  # plain http
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-secret")
    assert main(["report", str(tmp_path), "--judge-url", url, "--judge-model", "j1", "--no-details"]) == 0
    assert seen and all(auth is None for _, auth, _ in seen)
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-named-secret")
    argv = [
        "report",
        str(tmp_path),
        "--judge-url",
        url,
        "--judge-model",
        "j2",
        "--judge-key-env",
        "MY_JUDGE_KEY",
    ]
    assert main(argv) == 0
    assert seen[-1][1] == "Bearer sk-named-secret"
    from omnisift.evaluation.judge import judge_api_key

    assert judge_api_key("https://judge.example/v1", None) == "sk-default-secret"
    printed = capsys.readouterr()
    everything = (
        caplog.text + printed.out + printed.err + "".join(p.read_text() for p in tmp_path.rglob("*.json*"))
    )
    assert "secret" not in everything
