"""omnisift inside lmms-eval (extra `omnisift[lmms-eval]`): the `omnisift` model and the Daily-Omni,
OmniVideoBench and video-SALMONN-2 tasks lmms-eval lacks (plus WorldSense and Video-MME on omnisift's
question files and parser, for the paper's whole table).

The model is registered through lmms-eval's `lmms_eval.models` entry point (`--model omnisift`); the
tasks live in `tasks/` next to this file (`--include_path "$(python -m omnisift.lmms_eval tasks)"`).
Only `model` and `registration` import lmms-eval; `settings` and `stats` are plain Python.
"""

from pathlib import Path

__all__ = ["TASKS_DIR"]

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
"""The folder to pass to lmms-eval's `--include_path`."""
