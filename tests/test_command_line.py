"""The command line: demo on the tiny model, methods listing, clear errors."""

from __future__ import annotations

import pytest

from omnisift.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_demo_prints_the_comparison_table(capsys, tmp_path) -> None:
    picture = tmp_path / "kept.png"
    argv = ["demo", "--seconds", "4", "--max-new-tokens", "2", "--retain", "0.5", "--no-gain"]
    assert main([*argv, "--picture", str(picture)]) == 0
    out = capsys.readouterr().out
    assert f"picture of what was kept (omnisift show): {picture}" in out
    assert picture.stat().st_size > 1000
    assert "random weights" in out
    assert "full tokens" in out and "retain 0.50" in out
    assert "prefill ms" in out and "peak MiB" in out
    assert out.count("output (") == 2


def test_demo_on_the_qwen3_omni_fixture(capsys) -> None:
    argv = ["demo", "--model", "tiny-qwen3-omni", "--seconds", "4", "--max-new-tokens", "2", "--no-gain"]
    assert main([*argv, "--no-picture"]) == 0
    out = capsys.readouterr().out
    assert "Qwen3-Omni-MoE" in out and "random" in out
    rows = [
        line for line in out.splitlines() if line.startswith(("full tokens", "retain 0.35", "retain 0.25"))
    ]
    assert len(rows) == 3
    assert all("->" in row for row in rows[1:])  # tokens dropped at both budgets


def test_methods_lists_every_registered_method(capsys) -> None:
    from omnisift.methods import METHODS

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in METHODS:
        assert name in out
    assert "trained selector" in out and "training-free" in out


def test_bad_input_is_a_clear_error(capsys) -> None:
    assert main(["demo", "--video", "/no/such/file.mp4", "--seconds", "2", "--no-gain", "--no-picture"]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module", ["omnisift", "omnisift.evaluation", "omnisift.training", "omnisift.benchmarking"]
)
def test_every_module_form_ends_a_bad_value_in_one_line(module, tmp_path) -> None:
    """`python -m` forms (what torchrun and accelerate launch run) refuse like `omnisift`: one line
    naming the setting, exit code 2, no traceback."""
    import json
    import subprocess
    import sys

    questions, data = tmp_path / "q.jsonl", tmp_path / "data.jsonl"
    questions.write_text("\n")
    data.write_text(json.dumps({"video": "a.mp4", "conversations": [{"value": "q"}, {"value": "a"}]}) + "\n")
    evaluate = ["eval", "--benchmark", "worldsense", "--model", "tiny", "--questions", str(questions)]
    evaluate += ["--media-root", str(tmp_path), "--out", str(tmp_path / "out"), "--retain", "1.5"]
    train = [
        "train",
        "--data",
        str(data),
        "--model",
        "tiny",
        "--out",
        str(tmp_path / "run"),
        "--retain",
        "1.5",
    ]
    argv, setting = {
        "omnisift": (evaluate, "retain"),
        "omnisift.evaluation": (evaluate, "retain"),
        "omnisift.training": (train, "retain"),
        "omnisift.benchmarking": (["--suite", "prefill", "--layers", "0"], "layers"),
    }[module]
    result = subprocess.run(
        [sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert setting in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
