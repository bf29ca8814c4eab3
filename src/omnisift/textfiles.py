"""Reading the project's JSON and JSON Lines files (questions, training data, results, run records) as UTF-8.

Each line is decoded on its own, so a file that is binary or in another encoding (Latin-1, UTF-16) is
refused with its path, the line and what to do, instead of a bare decode error from deep in a loop; every
reader refuses a row that is not a JSON object the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["jsonl_lines", "jsonl_objects", "read_json_object"]


def jsonl_lines(path: Path, what: str, error: type[Exception] = ValueError) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of each line of the `what` file at `path`; raise `error` naming the
    file and line when a line is not UTF-8 text or the file cannot be read."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise error(
                    f"{path}:{number}: the {what} is not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                    f"{exc.start + 1}); it must be UTF-8 JSON Lines, one JSON object a line: re-save it as "
                    "UTF-8, or pass the right file"
                ) from None
            if "\x00" in line:
                raise error(
                    f"{path}:{number}: the {what} holds NUL bytes (a binary or UTF-16 file?); it must be UTF-8 "
                    "JSON Lines, one JSON object a line"
                )
            yield number, line


def jsonl_objects(path: Path, what: str, error: type[Exception]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number from 1, `path:line`, row) for each non-blank line of the `what` file at `path`; `error`
    naming the line when a row is not valid JSON or not a JSON object (or the line not UTF-8 text)."""
    for number, line in jsonl_lines(path, what, error):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}: not valid JSON ({exc}); fix or remove that line") from exc
        if not isinstance(row, dict):
            raise error(
                f"{where}: a row must be a JSON object, got {type(row).__name__}; fix or remove that line"
            )
        yield number, where, row


def read_json_object(path: Path, error: type[Exception], remedy: str) -> dict[str, Any] | None:
    """The JSON object in `path`, None when there is no such file; `error` (naming the file, then `remedy`)
    when it is not valid JSON or not an object."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path} is not valid JSON ({exc}); {remedy}") from exc
    if not isinstance(data, dict):
        raise error(f"{path} is not a JSON object; {remedy}")
    return data
