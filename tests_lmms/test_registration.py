"""lmms-eval finds `--model omnisift` through the entry point, and the tasks through --include_path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omnisift.lmms_eval import TASKS_DIR


def _utils():
    import importlib.util

    spec = importlib.util.spec_from_file_location("omnisift_task_utils_reg", TASKS_DIR / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entry_point_registers_the_model() -> None:
    from lmms_eval.models import get_model

    from omnisift.lmms_eval.model import LmmsEvalModel

    assert get_model("omnisift") is LmmsEvalModel


def test_task_folder_is_printed_and_holds_the_three_tasks() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnisift.lmms_eval", "tasks"], capture_output=True, text=True, check=True
    )
    assert Path(done.stdout.strip()) == TASKS_DIR
    names = {path.stem for path in TASKS_DIR.glob("*.yaml")}
    assert {"omnisift_dailyomni", "omnisift_omnivideobench", "omnisift_video_salmonn2"} <= names
    assert all(callable(getattr(_utils(), f"process_docs_{n}")) for n in ("worldsense", "videomme"))


def test_lmms_eval_indexes_the_tasks_and_the_group() -> None:
    from lmms_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    expected = {
        f"omnisift_{name}"
        for name in ("dailyomni", "omnivideobench", "video_salmonn2", "worldsense", "videomme")
    }
    assert expected <= set(manager.all_subtasks)
    assert "omnisift_omni" in manager.all_groups
