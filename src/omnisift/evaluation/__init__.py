"""Benchmark evaluation for OmniSIFT: question loaders, media decoding, runner, scoring and reports.

Typical use is the CLI (`omnisift eval`, `omnisift report`; see `omnisift.evaluation.cli`). The pieces
are importable for custom loops: `load_benchmark` gives normalised questions, `omnisift.media.load` (re-exported
as `load_media`) decodes a video as the model sees it, `extract_choice` parses multiple-choice answers, `run_eval` runs a
benchmark shard and `write_report` merges and scores results.
"""

from ..media import Media, MediaError, SamplingConfig
from ..media import load as load_media
from .benchmarks import (
    BENCHMARKS,
    MissingMediaError,
    Question,
    check_media,
    load_benchmark,
)
from .choices import extract_choice
from .scoring import BenchmarkScore, Verdict, score_rows

__all__ = [
    "BENCHMARKS",
    "BenchmarkScore",
    "EvalConfig",
    "MediaError",
    "MissingMediaError",
    "OpenAICompatibleJudge",
    "Protocol",
    "Question",
    "Media",
    "SamplingConfig",
    "Verdict",
    "check_media",
    "extract_choice",
    "load_benchmark",
    "load_media",
    "run_eval",
    "score_rows",
    "write_report",
]

_LAZY = {
    "EvalConfig": "omnisift.evaluation.runner",
    "run_eval": "omnisift.evaluation.runner",
    "Protocol": "omnisift.inputs",
    "OpenAICompatibleJudge": "omnisift.evaluation.judge",
    "write_report": "omnisift.evaluation.report",
}


def __getattr__(name: str):
    """Import the runner, judge and report only when used (they pull in transformers)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'omnisift.evaluation' has no attribute {name!r}")
