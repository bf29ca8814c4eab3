"""`import omnisift` stays light, and a command missing an optional extra names the extra to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import omnisift
from omnisift._extras import MissingExtraError, require
from omnisift.cli import main

SRC = str(Path(omnisift.__file__).resolve().parents[1])
COMMAND_ONLY = ("matplotlib", "accelerate", "tqdm", "omnisift.benchmarking", "omnisift.testing")


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_import_omnisift_adds_no_command_only_module() -> None:
    # torch itself imports tqdm (torch.hub): count only what `import omnisift` adds after torch.
    done = _python(
        "import json, sys, torch\n"
        "before = set(sys.modules)\n"
        "import omnisift\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    assert done.returncode == 0, done.stderr
    added = json.loads(done.stdout.splitlines()[-1])
    assert "omnisift.api" in added  # the check sees omnisift's own modules
    heavy = [m for m in added if m.split(".")[0] in COMMAND_ONLY or m.startswith(COMMAND_ONLY)]
    assert heavy == [], f"`import omnisift` imports command-only modules: {heavy}"


def test_core_and_cli_parser_work_without_the_extras(tmp_path) -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('matplotlib', 'accelerate', 'tqdm'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    done = _python(
        blocker + "import omnisift\n"
        "from omnisift.cli import build_parser, main\n"
        "build_parser()\n"
        f"sys.exit(main(['bench', '--suite', 'selection', '--out', {str(tmp_path)!r}]))\n"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'omnisift[bench]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not any(tmp_path.iterdir())  # stopped before measuring


class _NotInstalled:
    """A meta path finder that makes a package look uninstalled."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == self.package:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.fixture
def no_matplotlib(monkeypatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NotInstalled("matplotlib"), *sys.meta_path])


def test_require_names_the_extra(no_matplotlib) -> None:
    with pytest.raises(
        MissingExtraError, match=r"matplotlib is not installed.*pip install 'omnisift\[bench\]'"
    ):
        require("matplotlib.pyplot", "bench")


def test_require_passes_other_missing_modules_through(tmp_path, monkeypatch) -> None:
    (tmp_path / "needs_a_missing_dependency.py").write_text("import omnisift_test_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        require("needs_a_missing_dependency", "bench")
    assert not isinstance(caught.value, MissingExtraError)
    assert caught.value.name == "omnisift_test_no_such_module"


def test_bench_command_reports_the_missing_extra(no_matplotlib, tmp_path, capsys) -> None:
    assert main(["bench", "--suite", "methods", "--out", str(tmp_path)]) == 2
    assert "omnisift[bench]" in capsys.readouterr().err
    assert not (tmp_path / "methods.json").exists()  # stopped before measuring
