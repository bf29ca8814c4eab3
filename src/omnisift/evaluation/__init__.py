"""Benchmark evaluation for OmniSIFT: loaders, media decoding, runner, scoring and reports."""

from omnisift.evaluation.choices import extract_choice

__all__ = ["extract_choice"]
