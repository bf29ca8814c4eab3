"""Reading the project's JSON Lines files (questions, training data, results) line by line, as UTF-8.

Each line is decoded on its own, so a file that is binary or in another encoding (Latin-1, UTF-16) is
refused with its path, the line and what to do, instead of a bare decode error from deep in a loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

__all__ = ["jsonl_lines"]


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
