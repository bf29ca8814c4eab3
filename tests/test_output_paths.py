"""An output location that cannot be written is named before the work starts (issue 23, kind 2):
`omnisift train --out`, `bench --out`, `show --out`, `demo --picture` (eval: tests/evaluation/test_one_writer.py)."""

from __future__ import annotations

import json

import pytest

from omnisift.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _train(tmp_path, out):
    data = tmp_path / "data.jsonl"
    row = {
        "video": "a.mp4",
        "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
    }
    data.write_text(json.dumps(row) + "\n")
    return ["train", "--data", str(data), "--model", "tiny", "--out", str(out)]


COMMANDS = {
    "train": (lambda tmp_path, out: _train(tmp_path, out), "--out"),
    "bench": (lambda tmp_path, out: ["bench", "--suite", "selection", "--quick", "--out", str(out)], "--out"),
    "show": (lambda tmp_path, out: ["show", "--seconds", "1", "--out", str(out / "kept.png")], "--out"),
    "demo": (
        lambda tmp_path, out: ["demo", "--no-gain", "--seconds", "1", "--picture", str(out / "kept.png")],
        "--picture",
    ),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_output_under_a_file_is_named_before_work(command, tmp_path, capsys):
    argv, setting = COMMANDS[command]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(argv(tmp_path, blocker)) == 2
    err = capsys.readouterr().err
    assert f"{setting} {blocker}" in err and "is a file" in err and "Traceback" not in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_read_only_output_is_named_before_work(command, tmp_path, capsys, monkeypatch):
    import os

    from omnisift import output_paths

    argv, setting = COMMANDS[command]
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # chmod does not stop root, so the check's own question is answered "no" for this folder.
    monkeypatch.setattr(
        output_paths.os, "access", lambda path, mode: False if path == locked else real_access(path, mode)
    )
    assert main(argv(tmp_path, locked / "sub")) == 2
    err = capsys.readouterr().err
    assert f"{locked} is not writable" in err and setting in err
    assert not (locked / "sub").exists()


def test_train_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "run"
    out.write_text("a file")
    assert main(_train(tmp_path, out)) == 2
    assert f"--out {out} is a file, not a folder" in capsys.readouterr().err
