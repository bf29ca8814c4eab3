"""One run folder, one writer; the run folder stays inside --out and is only made when the run can start
(issue 23, kinds 5 and 10)."""

from __future__ import annotations

import fcntl
import sys

import pytest
from evaluation_helpers import eval_config

from omnisift.evaluation.cli import main
from omnisift.evaluation.results import read_rows, shard_path
from omnisift.evaluation.run_lock import RunLockedError
from omnisift.evaluation.runner import run_eval


def _argv(question_files, media_root, out, *extra):
    return [
        "eval",
        "--benchmark",
        "worldsense",
        "--media-root",
        str(media_root),
        "--model",
        "tiny",
        "--questions",
        str(question_files["worldsense"]),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_a_second_writer_of_the_same_shard_is_refused_and_writes_nothing(
    question_files, media_root, tmp_path, scripted
):
    config = eval_config(question_files["worldsense"], media_root, tmp_path, limit=2)
    shard = shard_path(tmp_path / "run" / "worldsense", 0, 1)
    shard.parent.mkdir(parents=True)
    with shard.with_suffix(".lock").open("a") as held:  # what a running `omnisift eval` holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunLockedError, match=rf"another process is writing {shard}.*--run-name"):
            run_eval(config, loaded=scripted)
        assert not shard.exists()
    # Once the first writer is gone (its lock goes with its process), the run goes on and answers each
    # question once; a rerun adds nothing.
    run_eval(config, loaded=scripted)
    run_eval(config, loaded=scripted)
    assert len(read_rows(shard)) == 2


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute-run", "a/b", "..", "."])
def test_run_name_cannot_leave_out(name, question_files, media_root, tmp_path, capsys):
    out = tmp_path / "deep" / "out"
    assert main(_argv(question_files, media_root, out, "--run-name", name)) == 2
    assert "--run-name must be one folder name inside --out" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists()


def test_an_out_that_is_a_file_is_named_before_work(question_files, media_root, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert main(_argv(question_files, media_root, out, "--limit", "1")) == 2
    assert f"cannot make the results folder {out}" in capsys.readouterr().err


def test_eval_without_pyav_names_the_extra_and_leaves_no_run_folder(
    question_files, media_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` fails as if PyAV were not installed
    out = tmp_path / "out"
    assert main(_argv(question_files, media_root, out, "--limit", "1")) == 2
    assert "pip install 'omnisift[media]'" in capsys.readouterr().err
    assert not out.exists()
