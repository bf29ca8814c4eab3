"""Scores from result rows: accuracy per benchmark and per category, token budget achieved, captions.

Accuracy counts every question that has a row: error rows (unreadable video, failed generation) and
responses naming no single option count as wrong, so a run cannot look better by failing. Questions
skipped for missing media have no row and are not counted (the report shows n).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..inner.accounting import layer_weighted, mean_flops_ratio

__all__ = ["BenchmarkScore", "CaptionScore", "Verdict", "score_rows"]


@dataclass(frozen=True)
class Verdict:
    """A judge's reading of one caption against the reference events (video-SALMONN-2 metric)."""

    missed: int
    reference_events: int
    hallucinated: int
    caption_events: int

    @property
    def miss_rate(self) -> float:
        return self.missed / self.reference_events if self.reference_events else 0.0

    @property
    def hallucination_rate(self) -> float:
        return self.hallucinated / self.caption_events if self.caption_events else 0.0


@dataclass
class CaptionScore:
    """Mean per-caption miss and hallucination rates (percent); total = miss + hallucination, lower is better."""

    judged: int
    pending: int
    miss: float
    hallucination: float

    @property
    def total(self) -> float:
        return self.miss + self.hallucination


@dataclass
class CategoryScore:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float | None:
        return 100.0 * self.correct / self.total if self.total else None


@dataclass
class BenchmarkScore:
    benchmark: str
    rows: int = 0
    errors: int = 0
    unparsed: int = 0
    correct: int = 0
    open_ended: bool = False
    categories: dict[str, dict[str, CategoryScore]] = field(default_factory=dict)
    tokens_before: int = 0
    tokens_after: int = 0
    video_before: int = 0
    video_after: int = 0
    audio_before: int = 0
    audio_after: int = 0
    accounting: list[dict[str, Any]] = field(default_factory=list)
    """Each scored row's token counts and accounting fields (for the layer-averaged and FLOPs columns)."""
    caption: CaptionScore | None = None

    @property
    def accuracy(self) -> float | None:
        """Percent correct over all rows; None for open-ended benchmarks."""
        if self.open_ended or not self.rows:
            return None
        return 100.0 * self.correct / self.rows

    @property
    def score(self) -> float | None:
        """The benchmark's headline number: accuracy, or the caption total error (None if not judged)."""
        if self.open_ended:
            return self.caption.total if self.caption and self.caption.judged else None
        return self.accuracy

    @property
    def retained(self) -> float | None:
        """Fraction of audio+video tokens kept, over all scored rows (token-weighted)."""
        return self.tokens_after / self.tokens_before if self.tokens_before else None

    @property
    def layer_avg_kept(self) -> float | None:
        """Fraction of audio+video tokens present, averaged over the LLM's layers, token-weighted over rows."""
        return layer_weighted(self.accounting)

    @property
    def flops_ratio(self) -> float | None:
        """Mean LLM prefill FLOPs relative to full tokens over the rows that report it."""
        return mean_flops_ratio(self.accounting)

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "rows": self.rows,
            "errors": self.errors,
            "unparsed": self.unparsed,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "score": self.score,
            "retained": self.retained,
            "video_retained": self.video_after / self.video_before if self.video_before else None,
            "audio_retained": self.audio_after / self.audio_before if self.audio_before else None,
            "layer_avg_kept": self.layer_avg_kept,
            "prefill_flops_ratio": self.flops_ratio,
            "categories": {
                axis: {
                    v: {"correct": c.correct, "total": c.total, "accuracy": c.accuracy}
                    for v, c in values.items()
                }
                for axis, values in self.categories.items()
            },
            "caption": None
            if self.caption is None
            else {
                "judged": self.caption.judged,
                "pending": self.caption.pending,
                "miss": self.caption.miss,
                "hallucination": self.caption.hallucination,
                "total": self.caption.total,
            },
        }


def score_rows(
    benchmark: str,
    rows: list[dict[str, Any]],
    verdicts: dict[str, Verdict] | None = None,
    open_ended: bool | None = None,
) -> BenchmarkScore:
    """Score merged rows of one benchmark. `verdicts` (id -> Verdict) scores open-ended captions."""
    if open_ended is None:
        open_ended = any(r.get("open_ended") for r in rows) or benchmark == "video_salmonn"
    score = BenchmarkScore(benchmark=benchmark, open_ended=open_ended)
    for row in rows:
        score.rows += 1
        ok = row.get("status") == "ok"
        if not ok:
            score.errors += 1
        tokens = row.get("tokens") or {}
        if ok and tokens:
            for name in ("video_before", "video_after", "audio_before", "audio_after"):
                setattr(score, name, getattr(score, name) + int(tokens.get(name, 0)))
            score.tokens_before += int(tokens.get("video_before", 0)) + int(tokens.get("audio_before", 0))
            score.tokens_after += int(tokens.get("video_after", 0)) + int(tokens.get("audio_after", 0))
            score.accounting.append(tokens)
        if open_ended:
            continue
        correct = bool(row.get("correct"))
        if ok and row.get("choice") is None:
            score.unparsed += 1
        score.correct += correct
        for axis, value in (row.get("categories") or {}).items():
            cell = score.categories.setdefault(axis, {}).setdefault(str(value), CategoryScore())
            cell.total += 1
            cell.correct += correct
    if open_ended and verdicts:
        judged = [verdicts[r["id"]] for r in rows if r.get("status") == "ok" and r["id"] in verdicts]
        ok_rows = sum(1 for r in rows if r.get("status") == "ok")
        if judged:
            # An error row is a caption that missed every event and invented none.
            count = len(judged) + score.errors
            score.caption = CaptionScore(
                judged=len(judged),
                pending=ok_rows - len(judged),
                miss=100.0 * (sum(v.miss_rate for v in judged) + score.errors) / count,
                hallucination=100.0 * sum(v.hallucination_rate for v in judged) / count,
            )
    return score
