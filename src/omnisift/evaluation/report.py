"""Collect the runs under a results folder, score them and present them like the paper's Table 1.

A results folder holds `<run>/<benchmark>/meta.json` plus shard files (see `results.py`). The report
merges the shards of each benchmark (so two half runs read as one whole run), scores them, prints a
methods x benchmarks table, per-category breakdowns (Video-MME also per duration), and draws score
against the fraction of audio+video tokens kept, one line per method.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._extras import require
from ..inner.accounting import layer_weighted, mean_flops_ratio
from ..protocols import effective_values, values_text
from .benchmarks import BENCHMARKS, OPEN_ENDED
from .judge import Judge, cached_verdicts, judge_rows, load_verdicts
from .results import merge_rows, read_meta, read_rows
from .scoring import BenchmarkScore, score_rows

__all__ = [
    "PAPER_TABLE1",
    "RunReport",
    "collect_runs",
    "format_details",
    "format_table",
    "plot_runs",
    "write_report",
]

logger = logging.getLogger(__name__)

# Column order and titles of the paper's Table 1 (Daily-Omni is reported in its text).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("worldsense", "WorldSense"),
    ("omnivideobench", "OmniVideoBench"),
    ("videomme", "Video-MME"),
    ("video_salmonn", "video-SALMONN-2 (lower better)"),
    ("dailyomni", "Daily-Omni"),
)
TITLES = dict(COLUMNS)
DURATION_ORDER = {"short": 0, "medium": 1, "long": 2}

# docs/design.md#paper-numbers: the paper's Table 1 for Qwen2.5-Omni (WorldSense, OmniVideoBench, Video-MME, video-SALMONN-2).
PAPER_TABLE1: tuple[tuple[str, str, float, tuple[float, float, float, float]], ...] = (
    ("7B", "Full tokens", 1.0, (49.7, 35.6, 67.6, 48.1)),
    ("7B", "OmniSIFT", 0.35, (50.0, 35.6, 68.3, 50.5)),
    ("7B", "OmniZip", 0.35, (48.9, 35.1, 66.7, 54.1)),
    ("7B", "Random", 0.35, (48.3, 33.4, 67.3, 53.1)),
    ("7B", "DyCoke", 0.35, (48.6, 34.4, 67.9, 52.7)),
    ("7B", "OmniSIFT", 0.25, (49.9, 35.4, 68.2, 51.2)),
    ("7B", "OmniZip", 0.25, (48.1, 34.1, 66.0, 57.2)),
    ("7B", "Random", 0.25, (47.1, 32.6, 66.1, 56.9)),
    ("7B", "DyCoke", 0.25, (48.1, 34.1, 65.9, 56.3)),
    ("3B", "Full tokens", 1.0, (45.8, 33.5, 64.2, 53.6)),
    ("3B", "OmniSIFT", 0.25, (45.8, 33.1, 63.0, 58.3)),
)


@dataclass
class RunReport:
    """One run folder: its configuration and a score per benchmark it has rows for."""

    name: str
    meta: dict[str, Any]
    scores: dict[str, BenchmarkScore] = field(default_factory=dict)
    judge: str | None = None
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Benchmark -> the effective protocol values its rows were answered under (`effective_values`)."""

    @property
    def method(self) -> str:
        return self.meta.get("method", "none")

    @property
    def label(self) -> str:
        """Method and setting, e.g. "Full tokens", "omnisift retain 0.25", "random v0.7 a0.3"."""
        if self.method == "none":
            return "Full tokens"
        if self.meta.get("retain") is not None:
            budget = f" ({self.meta['budget']})" if self.meta.get("budget") else ""
            return f"{self.method} retain {self.meta['retain']:g}{budget}"
        return f"{self.method} v{self.meta.get('video_drop', 0):g} a{self.meta.get('audio_drop', 0):g}"

    @property
    def model(self) -> str:
        label = self.meta.get("model_label") or Path(str(self.meta.get("model", "?"))).name
        return label

    @property
    def protocol(self) -> str:
        """The protocol preset and any setting changed from it ("seats", "omnisift-paper (fps=1)"); runs
        made before presets existed used the OmniSIFT paper's."""
        return str(self.meta.get("protocol_label") or self.meta.get("protocol_preset") or "omnisift-paper")

    @property
    def retained(self) -> float | None:
        """Token-weighted fraction of audio+video tokens kept over all benchmarks of the run."""
        before = sum(s.tokens_before for s in self.scores.values())
        after = sum(s.tokens_after for s in self.scores.values())
        return after / before if before else None

    @property
    def layer_avg_kept(self) -> float | None:
        """Token-weighted fraction of audio+video tokens present, averaged over the LLM's layers."""
        return layer_weighted(row for s in self.scores.values() for row in s.accounting)

    @property
    def flops_ratio(self) -> float | None:
        """Mean LLM prefill FLOPs relative to full tokens over the run's rows."""
        return mean_flops_ratio(row for s in self.scores.values() for row in s.accounting)


def collect_runs(
    root: str | Path,
    judge: Judge | None = None,
    judge_workers: int = 4,
    problems: list[str] | None = None,
) -> list[RunReport]:
    """Every run under `root` (a results folder, a run folder or a benchmark folder).

    A benchmark folder that cannot be read (corrupt meta.json, a damaged shard file) is left out with a
    warning, and its reason appended to `problems`: one broken run does not hide the others.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"results folder {root} not found")
    runs: dict[Path, RunReport] = {}
    for meta_path in sorted(root.rglob("meta.json")):
        bench_dir = meta_path.parent
        try:
            meta = read_meta(bench_dir) or {}
            rows = merge_rows(read_rows(bench_dir))
        except (ValueError, OSError) as exc:
            logger.warning("%s: left out of the report: %s", bench_dir, exc)
            if problems is not None:
                problems.append(str(exc))
            continue
        benchmark = meta.get("benchmark", bench_dir.name)
        run_dir = bench_dir.parent
        run = runs.get(run_dir)
        if run is None:
            run = runs[run_dir] = RunReport(
                name=run_dir.name, meta={k: v for k, v in meta.items() if k != "benchmark"}
            )
        elif any(
            run.meta.get(k) != meta.get(k) for k in ("model", "method", "video_drop", "audio_drop", "retain")
        ):
            logger.warning("%s: benchmark folders of one run disagree on the configuration", run_dir)
        recorded = meta.get("protocol") or (meta.get("identity") or {}).get("protocol")
        if isinstance(recorded, dict):
            run.protocols[benchmark] = effective_values(recorded)
        if not rows:
            continue
        verdicts = None
        if benchmark in OPEN_ENDED:
            if judge is not None:
                verdicts = judge_rows(rows, judge, bench_dir, workers=judge_workers)
                run.judge = judge.name
            else:
                cached = load_verdicts(bench_dir)
                if cached:
                    name = sorted(cached)[0]
                    if len(cached) > 1:
                        logger.warning("%s: verdicts of several judges cached; using %s", bench_dir, name)
                    verdicts, run.judge = cached_verdicts(rows, cached[name]), name
        run.scores[benchmark] = score_rows(benchmark, rows, verdicts)
    return [run for run in runs.values() if run.scores]


def _cell(score: BenchmarkScore | None) -> str:
    if score is None or not score.rows:
        return "-"
    if score.open_ended:
        caption = score.caption
        if caption is None or not caption.judged:
            return "not scored"
        text = f"{caption.total:.1f}"
        return (
            text
            if not caption.pending
            else f"{text} ({caption.judged}/{caption.judged + caption.pending} judged)"
        )
    return f"{score.accuracy:.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _sort_key(run: RunReport) -> tuple:
    kept = run.retained if run.retained is not None else 1.0
    return (run.model, run.method != "none", run.method, -kept, run.name)


def _markdown(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def format_table(runs: list[RunReport]) -> str:
    """Methods x benchmarks (accuracy %, video-SALMONN-2 total error %), with the kept fraction and MC mean."""
    present = [b for b, _ in COLUMNS if any(b in run.scores for run in runs)]
    header = [
        "Model",
        "Method",
        "Protocol",
        "Kept %",
        "Layer-avg kept %",
        "Prefill FLOPs %",
        *[TITLES[b] for b in present],
        "MC avg",
        "Questions",
    ]
    body = []
    for run in sorted(runs, key=_sort_key):
        accs = [run.scores[b].accuracy for b in present if b in run.scores and not run.scores[b].open_ended]
        accs = [a for a in accs if a is not None]
        model = run.model + (
            " [random weights]" if run.meta.get("random_weights") and "random" not in run.model else ""
        )
        body.append(
            [
                model,
                run.label,
                run.protocol,
                _percent(run.retained),
                _percent(run.layer_avg_kept),
                _percent(run.flops_ratio),
                *[_cell(run.scores.get(b)) for b in present],
                f"{sum(accs) / len(accs):.1f}" if accs else "-",
                str(sum(s.rows for s in run.scores.values())),
            ]
        )
    notes = [
        "Accuracy in % over every question with a row (errors and unparsed answers count as wrong);",
        "video-SALMONN-2: miss + hallucination rate in % (lower is better), scored by an LLM judge.",
        "Kept %: audio+video tokens kept at the LLM input, token-weighted over the run's questions.",
        "Layer-avg kept %: audio+video tokens present averaged over the LLM's layers (= Kept % for methods that",
        "drop before the LLM only), token-weighted; Prefill FLOPs %: LLM prefill FLOPs relative to full tokens,",
        "mean over questions (docs/design.md gives the formula).",
        "Protocol: the paper protocol preset the run used (omnisift eval --protocol), with settings changed from it;",
        "the values each protocol ran with (after the model's own limits):",
    ]
    notes += _protocol_notes(runs, present)
    if any(run.meta.get("random_weights") for run in runs):
        notes.insert(
            0, "WARNING: runs labelled random weights use a random tiny model; their numbers mean nothing."
        )
    judged = sorted({run.judge for run in runs if run.judge})
    if judged:
        notes.append(f"Judge: {', '.join(judged)}.")
    return _markdown(header, body) + "\n\n" + "\n".join(notes)


def _protocol_notes(runs: list[RunReport], present: list[str]) -> list[str]:
    """The effective values behind each protocol label of the table (a preset's frame cap and system
    prompt differ per benchmark), one line per distinct set of values."""
    seen: dict[tuple[str, str], list[str]] = {}
    for run in sorted(runs, key=_sort_key):
        for benchmark in present:
            values = run.protocols.get(benchmark)
            if values is None or benchmark not in run.scores:
                continue
            titles = seen.setdefault((run.protocol, values_text(values)), [])
            if TITLES[benchmark] not in titles:
                titles.append(TITLES[benchmark])
    return [f"- {label} on {', '.join(titles)}: {text}" for (label, text), titles in seen.items()]


def format_paper_table() -> str:
    header = [
        "Model",
        "Method",
        "Kept %",
        "WorldSense",
        "OmniVideoBench",
        "Video-MME",
        "video-SALMONN-2 (lower better)",
    ]
    body = [
        [m, name, f"{100 * kept:.0f}", *[f"{v:.1f}" for v in vals]] for m, name, kept, vals in PAPER_TABLE1
    ]
    return "Paper, Table 1 (Qwen2.5-Omni):\n" + _markdown(header, body)


def format_details(runs: list[RunReport]) -> str:
    """Per benchmark and run: counts, errors, unparsed answers, and accuracy per category value."""
    parts = []
    for run in sorted(runs, key=_sort_key):
        for benchmark in BENCHMARKS:
            score = run.scores.get(benchmark)
            if score is None:
                continue
            head = (
                f"### {run.model} / {run.label} / {TITLES[benchmark]}: {_cell(score)} "
                f"(n={score.rows}, errors={score.errors}"
                + ("" if score.open_ended else f", unparsed={score.unparsed}")
                + ("" if score.retained is None else f", kept={100 * score.retained:.1f}%")
                + ")"
            )
            parts.append(head + "\n")
            if score.open_ended and score.caption is not None and score.caption.judged:
                c = score.caption
                parts.append(f"miss {c.miss:.1f}% + hallucination {c.hallucination:.1f}% = {c.total:.1f}%")
            for axis, values in score.categories.items():
                order = sorted(
                    values, key=lambda v: (DURATION_ORDER.get(v, 9), v) if axis == "duration" else (0, v)
                )
                body = [[v, f"{values[v].accuracy:.1f}", str(values[v].total)] for v in order]
                parts.append(_markdown([axis, "acc %", "n"], body) + "\n")
            parts.append("")
    return "\n".join(parts)


def plot_runs(runs: list[RunReport], path: str | Path) -> Path:
    """Score vs kept fraction, one panel per benchmark, one line per (model, method)."""
    require("matplotlib", "eval").use("Agg")
    plt = require("matplotlib.pyplot", "eval")

    present = [b for b, _ in COLUMNS if any(b in r.scores and r.scores[b].score is not None for r in runs)]
    path = Path(path)
    panels = max(1, len(present))
    fig, axes = plt.subplots(1, panels, figsize=(max(6.0, 4.2 * panels), 3.8), squeeze=False)
    for ax, benchmark in zip(axes[0], present or [None], strict=False):
        if benchmark is None:
            ax.text(0.5, 0.5, "no scored runs", ha="center", va="center")
            ax.set_axis_off()
            continue
        series: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for run in runs:
            score = run.scores.get(benchmark)
            if score is None or score.score is None:
                continue
            kept = 100.0 * (score.retained if score.retained is not None else 1.0)
            if run.method == "none":
                ax.axhline(score.score, linestyle="--", linewidth=1, color="gray")
                ax.plot(
                    [kept],
                    [score.score],
                    marker="*",
                    color="black",
                    linestyle="none",
                    label=f"{run.model}: full",
                )
                continue
            series.setdefault((run.model, run.method), []).append((kept, score.score))
        for (model, method), points in sorted(series.items()):
            points.sort()
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=f"{model}: {method}")
        ax.set_title(TITLES[benchmark])
        ax.set_xlim(0, 105)
        ax.set_xlabel("audio+video tokens kept (%)")
        ax.set_ylabel("total error (%), lower is better" if benchmark in OPEN_ENDED else "accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    title = "Score vs tokens kept"
    if any(run.meta.get("random_weights") for run in runs):
        title += "\n(RANDOM WEIGHTS: demo only, numbers mean nothing)"
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    root: str | Path,
    judge: Judge | None = None,
    figure: str | Path | None = None,
    details: bool = True,
    paper: bool = False,
) -> tuple[str, Path | None, list[RunReport]]:
    """Build the report text, write `report.md`, `report.json` and the figure under `root`."""
    root = Path(root)
    problems: list[str] = []
    runs = collect_runs(root, judge=judge, problems=problems)
    if not runs:
        reasons = "".join(f"\n  {p}" for p in problems)
        raise FileNotFoundError(
            f"no readable result rows under {root}; run `omnisift eval --out {root}` first{reasons}"
        )
    text = format_table(runs)
    if paper:
        text += "\n\n" + format_paper_table()
    if details:
        text += "\n\n" + format_details(runs)
    if problems:
        text += "\n\nLeft out (could not be read):\n" + "\n".join(f"- {p}" for p in problems)
    (root / "report.md").write_text(text + "\n", encoding="utf-8")
    data = [
        {
            "run": run.name,
            "model": run.model,
            "label": run.label,
            "meta": run.meta,
            "retained": run.retained,
            "layer_avg_kept": run.layer_avg_kept,
            "prefill_flops_ratio": run.flops_ratio,
            "judge": run.judge,
            "scores": {b: s.as_dict() for b, s in run.scores.items()},
        }
        for run in sorted(runs, key=_sort_key)
    ]
    (root / "report.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    figure_path = plot_runs(runs, figure if figure is not None else root / "report.png")
    return text, figure_path, runs
