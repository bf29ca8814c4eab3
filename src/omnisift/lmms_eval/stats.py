"""What the omnisift model measured for each question, handed to the task's `process_results`.

lmms-eval gives `process_results` only the document and the response text; the kept fraction and the
selection time are known to the model. The model records them here under the question's stable id
(both run in the same process, rank by rank), and the task turns them into per-sample metrics that
lmms-eval logs with each sample and averages in its results table. Another model leaves no record and
the task reports accuracy alone.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SampleRecord", "clear", "put", "get"]


@dataclass(frozen=True)
class SampleRecord:
    """One answered question: kept token fractions, this sample's share of the selection time, errors."""

    kept_fraction: float
    video_kept: float
    audio_kept: float
    select_seconds: float
    tokens_before: int
    tokens_after: int
    error: str | None = None

    def metrics(self) -> dict[str, Any]:
        """The per-sample metrics the tasks report (the error text stays in the model's log)."""
        values = asdict(self)
        values.pop("error")
        return values


_RECORDS: dict[str, SampleRecord] = {}
_LOCK = threading.Lock()  # lmms-eval may run process_results in worker threads


def put(question_id: str, record: SampleRecord) -> None:
    with _LOCK:
        _RECORDS[question_id] = record


def get(question_id: str) -> SampleRecord | None:
    """The record of `question_id`, or None (another model, or an answer served from lmms-eval's cache)."""
    with _LOCK:
        return _RECORDS.get(question_id)


def clear() -> None:
    with _LOCK:
        _RECORDS.clear()
