"""Every entry point refuses bad input by name, before work starts (issue 23, kinds 1, 2, 6, 7, 10)."""

from __future__ import annotations

import json
import sys
import tempfile

import pytest

from omnisift.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# Kind 1: a value one entry point refuses is refused by the others ------------------------------------


@pytest.mark.parametrize("value", ["1.5", "nan", "inf", "0", "-0.2"])
def test_demo_refuses_a_retain_outside_0_1_before_loading(value, capsys) -> None:
    assert main(["demo", "--retain", "0.5", value]) == 2
    err = capsys.readouterr().err
    assert "retain must be a number in (0, 1]" in err and value in err


@pytest.mark.parametrize(
    "flags,setting",
    [
        (["--repeats", "0"], "--repeats"),
        (["--clips", "0"], "--clips"),
        (["--clips", "30", "-5"], "--clips"),
        (["--layers", "0"], "--layers"),
        (["--threads", "0"], "--threads"),
        (["--tokens-per-grid", "0"], "--tokens-per-grid"),
        (["--time-budget", "0"], "time_budget_s"),
        (["--max-input-gb", "nan"], "max_input_gb"),
    ],
)
def test_bench_refuses_counts_below_one_before_measuring(flags, setting, tmp_path, capsys) -> None:
    out = tmp_path / "bench"
    assert main(["bench", "--suite", "selection", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert setting in err and "error" in err
    assert not out.exists()


def _train_args(tmp_path, *extra: str) -> list[str]:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"video": "a.mp4", "conversations": [{"value": "q"}, {"value": "a"}]}) + "\n")
    return ["train", "--data", str(data), "--model", "tiny", "--out", str(tmp_path / "run"), *extra]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--max-grad-norm", "-1"], "max_grad_norm must be a finite number >= 0"),
        (["--max-grad-norm", "nan"], "max_grad_norm must be a finite number >= 0"),
        (["--allow-changed-settings"], "--allow-changed-settings.*only applies with resume"),
        (["--resume"], "--resume: .*run holds no run to continue.*leave out --resume"),
        (["--max-length", "0"], "max_length must be a positive integer"),
    ],
)
def test_train_refuses_meaningless_settings_before_loading(flags, message, tmp_path, capsys) -> None:
    import re

    assert main(_train_args(tmp_path, *flags)) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


# Kind 7: long samples are refused at a stated default ------------------------------------------------


def test_train_has_a_stated_default_max_length(tmp_path, capsys) -> None:
    from omnisift.cli import build_parser
    from omnisift.training.cli import config_from_args
    from omnisift.training.trainer import DEFAULT_MAX_LENGTH, TrainConfig

    args = build_parser().parse_args(_train_args(tmp_path))
    assert config_from_args(args).max_length == DEFAULT_MAX_LENGTH == 32768
    assert TrainConfig(data="d.jsonl", out=tmp_path / "o").max_length == DEFAULT_MAX_LENGTH
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "default 32768" in " ".join(capsys.readouterr().out.split())


def test_an_answer_longer_than_max_length_is_refused_before_its_video_is_decoded(tmp_path, processor) -> None:
    from omnisift.training.data import ConversationDataset, DataError, Example

    example = Example(media=tmp_path / "never-read.mp4", prompt="q", answer="word " * 200, line=7)
    dataset = ConversationDataset([example], processor, max_length=50)
    with pytest.raises(
        DataError, match=r"never-read.mp4 \(data line 7\): the answer alone is \d+ tokens.*50"
    ):
        dataset[0]


# Kind 2: a file that is not UTF-8 text is named, with what to do ----------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "é".encode("latin-1") + b'{"a": 1}\n',  # Latin-1
        '{"video_path": "a.mp4"}\n'.encode("utf-16"),  # UTF-16: NULs and a BOM
        bytes(range(256)) * 4,  # binary
    ],
    ids=["latin-1", "utf-16", "binary"],
)
def test_question_and_data_files_that_are_not_utf8_are_named(content, tmp_path) -> None:
    from omnisift.evaluation.benchmarks import QuestionFileError, load_benchmark
    from omnisift.evaluation.results import ResultFileError, read_rows
    from omnisift.training.data import DataError, load_examples

    path = tmp_path / "file.jsonl"
    path.write_bytes(content)
    with pytest.raises(QuestionFileError, match=rf"{path}:1: the question file .*UTF-8 JSON Lines"):
        load_benchmark("worldsense", path, tmp_path)
    with pytest.raises(DataError, match=rf"{path}:1: the training data file .*UTF-8 JSON Lines"):
        load_examples(path, tmp_path)
    with pytest.raises(ResultFileError, match=rf"{path}:1: the result file .*UTF-8"):
        read_rows([path])


def test_a_full_disk_is_named_when_a_row_cannot_be_written(tmp_path) -> None:
    from pathlib import Path

    from omnisift.evaluation.results import ResultWriteError, ResultWriter

    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("needs /dev/full")
    writer = ResultWriter(full, fsync=False)
    with pytest.raises(ResultWriteError, match=r"cannot write a result row to /dev/full: .*space.*rerun"):
        writer.write({"id": "q1"})


# Kind 6: credentials in a URL are never printed --------------------------------------------------------


def test_judge_urls_are_logged_without_credentials(caplog, monkeypatch) -> None:
    from omnisift.evaluation.judge import JudgeError, OpenAICompatibleJudge, judge_api_key, url_for_logs

    secret_url = "http://alice:s3cret@judge.local:8000/v1?api_key=k3y&x=1"
    assert url_for_logs(secret_url) == "http://***@judge.local:8000/v1?api_key=***&x=1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    caplog.set_level("WARNING")
    assert judge_api_key(secret_url, None) is None  # plain http: the default key is not sent

    sent = []

    def refuse(request, timeout):
        sent.append(request)
        raise TimeoutError("timed out")

    monkeypatch.setattr("omnisift.evaluation.judge.time.sleep", lambda s: None)
    judge = OpenAICompatibleJudge(secret_url, "m", opener=refuse, retries=1)
    with pytest.raises(JudgeError) as error:
        judge("caption", "reference", ["event"])
    shown = caplog.text + str(error.value)
    assert "s3cret" not in shown and "alice" not in shown and "k3y" not in shown
    assert "judge.local" in shown
    # The credentials still reach the server, as a header (urllib cannot send them from the URL).
    assert "s3cret" not in sent[0].full_url and sent[0].get_header("Authorization").startswith("Basic ")


# Kind 10: a new user's path ----------------------------------------------------------------------------


def test_demo_without_pyav_names_the_extra(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now fails as if PyAV were not installed
    assert main(["demo", "--seconds", "2"]) == 2
    assert "pip install 'omnisift[media]'" in capsys.readouterr().err


def test_demo_leaves_no_temporary_folder(tmp_path, monkeypatch, capsys) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    picture = tmp_path / "kept.png"
    argv = ["demo", "--seconds", "2", "--max-new-tokens", "1", "--retain", "0.5", "--picture", str(picture)]
    assert main(argv) == 0
    assert "generated clip (2 s" in capsys.readouterr().out
    # torch's own compile cache (torchinductor_<user>) may appear there; nothing of omnisift's may.
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []


def test_show_without_a_video_leaves_no_temporary_folder(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("matplotlib")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["show", "--out", str(tmp_path / "show.png"), "--seconds", "1"]) == 0
    assert (tmp_path / "show.png").is_file() and list(scratch.iterdir()) == []


# Kind 8: a checkpoint without a selector runs the video-only pruning the demo announces ---------------


@pytest.fixture(scope="module")
def stock_folder(tmp_path_factory):
    """A checkpoint folder with no selector keys (as stock Qwen2.5-Omni is)."""
    from omnisift.models.qwen2_5_omni.fixtures import tiny_processor, tiny_thinker

    folder = tmp_path_factory.mktemp("stock")
    tiny_thinker().save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


def test_demo_on_a_checkpoint_without_selector_prunes_video_only(
    stock_folder, tmp_path, capsys, caplog
) -> None:
    import re

    pytest.importorskip("matplotlib")
    picture = tmp_path / "kept.png"
    caplog.set_level("WARNING")
    argv = ["demo", "--model", str(stock_folder), "--no-gain", "--picture", str(picture), "--seconds", "1"]
    assert main([*argv, "--max-new-tokens", "1", "--retain", "0.5"]) == 0
    assert "video-only pruning" in caplog.text
    out = capsys.readouterr().out
    row = re.search(r"^video 0\.50\s+(\d+) -> (\d+)\s+(\d+) -> (\d+)", out, re.M)
    assert row is not None, out
    video_before, video_after, audio_before, audio_after = map(int, row.groups())
    assert audio_after == audio_before > 0  # audio kept whole, as announced
    assert 0 < video_after < video_before and abs(video_after - video_before / 2) <= video_before * 0.1
    assert picture.is_file()
