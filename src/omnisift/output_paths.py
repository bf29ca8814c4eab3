"""Checks that an output location can be written, made before the work that fills it.

Without them a `--out` that is a file, or a folder without write permission, ends in a bare
`FileExistsError` / `NotADirectoryError` traceback, sometimes after minutes of work (a picture is drawn
last). Nothing is created here: a refused run leaves no folder behind.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OutputPathError", "check_output_file", "check_output_folder"]


class OutputPathError(ValueError):
    """An output location that cannot be written; the message names it, the setting and what to do."""


def check_output_folder(folder: str | Path, setting: str) -> None:
    """Raise OutputPathError when `folder` (given as `setting`, e.g. "--out") could not be made or written
    into: it, or the nearest existing folder above it, is a file or not writable."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"cannot be made: {existing} is a file"
        raise OutputPathError(f"{setting} {folder} {where}, not a folder; choose another {setting}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"{setting} {folder} cannot be written: {existing} is not writable; fix its permissions or "
            f"choose another {setting}"
        )


def check_output_file(path: str | Path, setting: str) -> None:
    """Raise OutputPathError when the file `path` (given as `setting`) could not be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{setting} {path} is a folder; name a file in it, e.g. {path / 'out.png'}")
    check_output_folder(path.parent, setting)
