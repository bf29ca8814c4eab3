"""Result files: one JSONL row per question, flushed as each finishes, one file per shard.

Layout: `<out>/<run>/<benchmark>/meta.json` (what produced the rows) and
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

__all__ = [
    "ResultWriter",
    "RunMetaMismatch",
    "finished_ids",
    "merge_rows",
    "read_meta",
    "read_rows",
    "shard_path",
    "write_meta",
]

logger = logging.getLogger(__name__)

META_FILE = "meta.json"
# Meta fields that must agree for rows to belong to the same run.
IDENTITY_KEYS = ("benchmark", "model", "method", "video_drop", "audio_drop", "retain", "selector", "protocol")


class RunMetaMismatch(ValueError):
    """A run folder already holds rows made with a different configuration."""


def shard_path(bench_dir: Path, rank: int, world: int) -> Path:
    return Path(bench_dir) / f"shard-{rank:03d}-of-{world:03d}.jsonl"


def shard_files(bench_dir: Path) -> list[Path]:
    return sorted(Path(bench_dir).glob("shard-*.jsonl"))


def write_meta(bench_dir: Path, meta: dict[str, Any]) -> None:
    """Record the run's configuration; refuse to mix rows of a different configuration."""
    bench_dir = Path(bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / META_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), meta.get(k)) for k in IDENTITY_KEYS if old.get(k) != meta.get(k)}
        has_rows = any(p.stat().st_size > 0 for p in shard_files(bench_dir))
        if diff and not has_rows:
            logger.info("%s: replacing the configuration of a run that wrote no rows", bench_dir)
        elif diff:
            raise RunMetaMismatch(
                f"{bench_dir} holds rows of another configuration ({diff}); "
                "pass a different --out or --run-name, or delete that folder"
            )
        else:
            return
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def read_meta(bench_dir: Path) -> dict[str, Any] | None:
    path = Path(bench_dir) / META_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _iter_file(path: Path) -> Iterator[dict[str, Any]]:
    broken = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                broken += 1
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._seal_partial_line()
        self._handle = self.path.open("a", encoding="utf-8")

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
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
