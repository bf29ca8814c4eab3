"""Helpers of the lmms-eval backend tests: the tiny Daily-Omni task, running lmms-eval's own command line
on it, and reading what it wrote. Run inside .venv-lmms (scripts/test_lmms_eval.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OPTIONS = ["a red ball", "a blue cube", "a green cone", "a yellow ring"]
VIDEOS = ["v1", "v2", "v1", "v3"]  # v1 twice: consecutive questions may share a video
TINY_PIXELS = (28 * 28 * 4, 28 * 28 * 16)  # the tiny processor's frame bounds (a folder is not "tiny")


@dataclass
class Checkpoint:
    folder: Path
    selector: Path

    def model_args(self, **settings: object) -> str:
        """`--model_args` for this checkpoint: its selector, the tiny frame bounds, then `settings`."""
        base = {
            "pretrained": self.folder,
            "selector": self.selector,
            "min_pixels": TINY_PIXELS[0],
            "max_pixels": TINY_PIXELS[1],
        }
        return ",".join(f"{key}={value}" for key, value in {**base, **settings}.items())


@dataclass
class DailyTask:
    questions: Path
    media: Path
    home: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HF_HOME=str(self.home),
            HF_DATASETS_OFFLINE="1",
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            OMNISIFT_DAILYOMNI_QUESTIONS=str(self.questions),
            OMNISIFT_DAILYOMNI_MEDIA=str(self.media),
        )
        env.pop("OMNISIFT_BENCHMARKS", None)
        return env


def prompt(question: str) -> str:
    lines = "\n".join(f"{'ABCD'[k]}. {text}" for k, text in enumerate(OPTIONS))
    return f"Select the best answer to the following question.\n{question}\n{lines}\nThe best answer is:"


def run_lmms_eval(task: DailyTask, model_args: str, out: Path, cache: Path, batch_size: int = 2) -> str:
    """`lmms-eval --model omnisift ...` on the tiny task, through lmms-eval's own console script."""
    from omnisift.lmms_eval import TASKS_DIR

    command = [
        str(Path(sys.executable).parent / "lmms-eval"),
        "--model",
        "omnisift",
        "--model_args",
        model_args,
        "--tasks",
        "omnisift_dailyomni",
        "--include_path",
        str(TASKS_DIR),
        "--batch_size",
        str(batch_size),
        "--output_path",
        str(out),
        "--log_samples",
        "--use_cache",
        str(cache),
    ]
    done = subprocess.run(command, env=task.env(), capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    return log


def read_runs(folder: Path) -> dict[str, tuple[dict, list[dict]]]:
    """Every lmms-eval run written under `folder`: model_args -> (results, samples by doc id)."""
    runs = {}
    for results_file in sorted(folder.rglob("*_results.json")):
        stamp = results_file.name[: -len("_results.json")]
        samples_file = results_file.with_name(f"{stamp}_samples_omnisift_dailyomni.jsonl")
        rows = [json.loads(line) for line in samples_file.read_text().splitlines() if line.strip()]
        results = json.loads(results_file.read_text())
        runs[results["config"]["model_args"]] = (results, sorted(rows, key=lambda r: r["doc_id"]))
    return runs
