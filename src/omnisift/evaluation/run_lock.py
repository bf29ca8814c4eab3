"""One writer per result shard: an operating-system lock held while a run writes its rows.

Two identical `omnisift eval` processes on one run folder would each see the same questions as not done
and answer every one of them twice. The lock (`fcntl.flock` on a file next to the shard) is released by
the operating system when its process ends, killed or not, so a stale lock never blocks a rerun.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RunLockedError", "hold_shard", "prepare_folder"]


class RunLockedError(RuntimeError):
    """Another process is writing this shard of this run."""


def prepare_folder(folder: Path) -> None:
    """Make the results folder, or raise naming it when it cannot be made or written (a file, read-only)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"cannot make the results folder {folder}: {exc.strerror or exc} (a file on the way, or no "
            "permission); choose another --out"
        ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(
            f"the results folder {folder} is not writable; fix its permissions or choose another --out"
        )


@contextmanager
def hold_shard(shard_file: Path) -> Iterator[Path]:
    """Hold the lock of `shard_file` for the body; raise RunLockedError at once if another process holds it."""
    prepare_folder(shard_file.parent)
    lock = shard_file.with_suffix(".lock")
    try:
        handle = lock.open("a")
    except OSError as exc:
        raise ValueError(
            f"cannot create the lock file {lock}: {exc.strerror or exc}; choose another --out"
        ) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"another process is writing {shard_file} (it holds {lock}): two writers would answer every "
                "question twice. Wait for it to finish (rerun then to resume), or pass another --run-name or --out"
            ) from None
        try:
            yield lock
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
