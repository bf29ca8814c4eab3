"""Media files named by a question or training file that are missing: found before any work starts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["MissingMediaError", "missing_media", "describe_missing"]


class MissingMediaError(FileNotFoundError):
    """Rows of a question or data file point at media that are not under the media root."""


def missing_media(paths: Sequence[Path]) -> set[Path]:
    """The distinct paths that are not files (each checked once: many rows often share one video)."""
    return {path for path in set(paths) if not path.is_file()}


def describe_missing(paths: Sequence[Path], missing: set[Path], rows: str, examples: int = 5) -> str:
    """ "3 of 10 <rows> (2 videos) have no media file, e.g. a.mp4, b.mp4"."""
    absent = sum(1 for path in paths if path in missing)
    shown = ", ".join(sorted(str(p) for p in missing)[:examples])
    return f"{absent} of {len(paths)} {rows} ({len(missing)} videos) have no media file, e.g. {shown}"
