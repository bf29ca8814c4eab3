"""A new user's path (issue 23, kind 10): the lmms-eval setup says when it failed, the README and the
docs point at files a clone has."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for .venv-lmms/bin/python: pip "succeeds" ({pip_status}) after printing an ERROR line, and
# the import check never passes (a package is missing).
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  echo "ERROR: pip's dependency resolver found a conflict" >&2
  exit {pip_status}
fi
exit 1
"""


@pytest.mark.parametrize("pip_status", [0, 1], ids=["pip-exits-0-with-ERROR", "pip-fails"])
def test_setup_lmms_eval_exits_non_zero_with_a_clear_line(pip_status, tmp_path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "setup_lmms_eval.sh"
    shutil.copy(ROOT / "scripts" / "setup_lmms_eval.sh", script)
    python = tmp_path / ".venv-lmms" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON.format(pip_status=pip_status))
    python.chmod(0o755)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "setup_lmms_eval.sh: FAILED" in done.stderr and ".venv-lmms" in done.stderr
    assert "is ready" not in done.stdout


def test_readme_points_at_no_folder_outside_the_clone() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme and "shared/benchmarks" not in readme
    assert "docs/question_files.md" in readme


def test_question_files_doc_example_row_loads(tmp_path) -> None:
    import json

    from omnisift.evaluation.benchmarks import load_benchmark

    doc = (ROOT / "docs" / "question_files.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", doc, re.S).group(1)
    row = json.loads(block.replace("\n ", " "))
    (tmp_path / "data.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (question,) = load_benchmark("worldsense", tmp_path, tmp_path / "media")
    assert question.answer == "B" and sorted(question.options) == ["A", "B", "C", "D"]
    assert question.media == tmp_path / "media" / row["video_path"]
    for benchmark in ("dailyomni", "worldsense", "videomme", "omnivideobench", "video_salmonn"):
        assert f"`{benchmark}`" in doc


def test_methods_lists_none(capsys) -> None:
    from omnisift.cli import main

    assert main(["methods"]) == 0
    assert re.search(r"^none\s", capsys.readouterr().out, re.M)


def test_readme_vllm_offline_example_guards_its_main_and_sizes_the_cpu_cache() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "LLM(" in b)
    assert 'if __name__ == "__main__":' in block
    assert "kv_cache_memory_bytes" in block
    compile(block, "README vLLM example", "exec")
