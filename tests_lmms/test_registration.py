"""lmms-eval finds `--model omnisift` through the entry point, and the tasks through --include_path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omnisift.lmms_eval import TASKS_DIR


def test_entry_point_registers_the_model() -> None:
    from lmms_eval.models import get_model

    from omnisift.lmms_eval.model import OmniSIFT

    assert get_model("omnisift") is OmniSIFT


def test_task_folder_is_printed_and_holds_the_three_tasks() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnisift.lmms_eval", "tasks"], capture_output=True, text=True, check=True
    )
    assert Path(done.stdout.strip()) == TASKS_DIR
    names = {path.stem for path in TASKS_DIR.glob("*.yaml")}
    assert {"omnisift_dailyomni", "omnisift_omnivideobench", "omnisift_video_salmonn2"} <= names
