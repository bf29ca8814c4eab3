"""What the omnisift model measured for each question, handed to the task's `process_results`.

lmms-eval gives `process_results` only the document and the response text; the kept fraction and the
selection time are known to the model. The model records them here under the question's stable id
(both run in the same process, rank by rank), and the task turns them into per-sample metrics that
lmms-eval logs with each sample and averages in its results table. Another model leaves no record and
the task reports accuracy alone.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from omnisift.inputs import Protocol
from omnisift.protocols import effective_values

__all__ = [
    "SampleRecord",
    "clear",
    "put",
    "get",
    "token_weighted",
    "mean",
    "same_protocol",
    "protocol_record",
]


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
    layer_kept_tokens: float | None = None
    """Audio+video tokens present averaged over the LLM's layers (None: as `tokens_after`, a pre-LLM run)."""
    prefill_flops_ratio: float | None = None
    """LLM prefill FLOPs relative to full tokens (None: not measured)."""
    protocol: str | None = None
    """JSON of the effective protocol values the answer was made under (`protocol_record`)."""

    def metrics(self) -> dict[str, Any]:
        """The per-sample metrics the tasks report (the error text stays in the model's log)."""
        values = asdict(self)
        values.pop("error")
        return values

    def task_metrics(self) -> dict[str, Any]:
        """What each task's `process_results` logs for this sample: counts for the token-weighted kept
        fractions (at the LLM input, and averaged over its layers), the relative FLOPs, the selection time and
        the effective protocol."""
        layer = self.tokens_after if self.layer_kept_tokens is None else self.layer_kept_tokens
        return {
            "kept_fraction": {"before": self.tokens_before, "after": self.tokens_after},
            "layer_avg_kept": {"before": self.tokens_before, "after": layer},
            "prefill_flops_ratio": 1.0 if self.prefill_flops_ratio is None else self.prefill_flops_ratio,
            "select_seconds": self.select_seconds,
            "protocol": self.protocol,
        }


def token_weighted(items: list[dict[str, float]]) -> float:
    """Kept fraction over all samples, weighted by tokens (as `omnisift report`'s columns): the tasks'
    aggregation of `kept_fraction` and `layer_avg_kept`."""
    before = sum(item["before"] for item in items)
    return sum(item["after"] for item in items) / before if before else 1.0


def mean(items: list[float]) -> float:
    """Plain mean (accuracy, relative FLOPs, selection time)."""
    return sum(items) / len(items) if items else 0.0


def same_protocol(items: list[str | None]) -> str:
    """The protocol every answer of the task was made under (JSON: preset, pixels, frames, fps, system
    prompt, answer cap, fallback), so lmms-eval's results file carries it; "mixed: ..." if they differ."""
    values = sorted({item for item in items if item})
    if not values:
        return "not recorded"
    return values[0] if len(values) == 1 else "mixed: " + " | ".join(values)


def protocol_record(protocol: Protocol) -> str:
    """The preset and the effective values (pixels, frames, fps, system prompt, answer cap, fallback) of
    a protocol as worked out for the model and task, as one JSON text (a results-file metric)."""
    return json.dumps(effective_values(protocol.to_dict()), sort_keys=True)


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
