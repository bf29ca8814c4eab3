"""Result files: one JSONL row per question, flushed as each finishes, one file per shard.

Layout: `<out>/<run>/<benchmark>/meta.json` (what produced the rows, see `run_identity`) and
`<out>/<run>/<benchmark>/shard-<rank>-of-<world>.jsonl`. Every rank appends to its own file, so
parallel ranks never share a file; a rerun reads every shard file of the benchmark to skip finished
questions, whatever the number of shards was before. A killed run leaves at most one partial line,
which readers skip and writers seal with a newline before appending.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..textfiles import jsonl_lines
from .run_identity import RunMetaMismatch, read_meta

__all__ = [
    "ResultFileError",
    "ResultWriteError",
    "ResultWriter",
    "RunMetaMismatch",
    "finished_ids",
    "merge_rows",
    "read_meta",
    "read_rows",
    "shard_path",
]

logger = logging.getLogger(__name__)


class ResultWriteError(RuntimeError):
    """A result row could not be written (the message names the file and the reason)."""


class ResultFileError(ValueError):
    """A result file holds a line that is JSON but not a result row (the message names file and line)."""


def shard_path(bench_dir: Path, rank: int, world: int) -> Path:
    return Path(bench_dir) / f"shard-{rank:03d}-of-{world:03d}.jsonl"


def shard_files(bench_dir: Path) -> list[Path]:
    return sorted(Path(bench_dir).glob("shard-*.jsonl"))


def _iter_file(path: Path) -> Iterator[dict[str, Any]]:
    broken = 0
    for number, line in jsonl_lines(path, "result file", ResultFileError):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            broken += 1
            continue
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise ResultFileError(
                f"{path}:{number}: not a result row (a JSON object with a string 'id'); the file was edited "
                "or damaged: delete that line (its question is rerun) or the whole shard file"
            )
        yield row
    if broken:
        logger.warning("%s: skipped %d partial line(s) left by an interrupted run", path, broken)


def read_rows(paths: Iterable[Path] | Path) -> list[dict[str, Any]]:
    """All rows of the given files (or of every shard file in a benchmark folder)."""
    if isinstance(paths, (str, Path)):
        paths = shard_files(Path(paths)) if Path(paths).is_dir() else [Path(paths)]
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows.extend(_iter_file(Path(path)))
    return rows


def merge_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per question id: a successful row beats an error row, then the latest wins."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["id"]
        old = best.get(key)
        if old is None:
            best[key] = row
            continue
        rank_new = (row.get("status") == "ok", row.get("finished_at", 0.0))
        rank_old = (old.get("status") == "ok", old.get("finished_at", 0.0))
        if rank_new >= rank_old:
            best[key] = row
    return sorted(best.values(), key=lambda r: (r.get("index", 0), r["id"]))


def finished_ids(bench_dir: Path, retry_errors: bool = False) -> set[str]:
    """Ids a rerun must skip: every question with a row (or only successful ones with retry_errors)."""
    rows = merge_rows(read_rows(Path(bench_dir))) if Path(bench_dir).is_dir() else []
    return {r["id"] for r in rows if not retry_errors or r.get("status") == "ok"}


class ResultWriter:
    """Appends rows to one shard file, flushing and syncing each so a kill loses at most the row in flight."""

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._seal_partial_line()
            self._handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ResultWriteError(
                f"cannot open {self.path} for writing: {exc.strerror or exc}; choose a writable --out"
            ) from exc

    def _seal_partial_line(self) -> None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")

    def write(self, row: dict[str, Any]) -> None:
        row = dict(row)
        row.setdefault("finished_at", time.time())
        try:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._handle.flush()
            if self._fsync:
                os.fsync(self._handle.fileno())
        except OSError as exc:
            raise ResultWriteError(
                f"cannot write a result row to {self.path}: {exc.strerror or exc} (disk full or read-only?); "
                "free space or fix the folder and rerun: the rows already written are kept and skipped"
            ) from exc

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
