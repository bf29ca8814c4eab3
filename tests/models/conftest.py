"""Shared by the model-family tests: the selector they score audio with."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from omnisift import VisionGuidedAudioSelector


@pytest.fixture(scope="session")
def spread_selector() -> Callable[[int], VisionGuidedAudioSelector]:
    """Builds a selector for a hidden size with N(0, 0.3) weights from generator seed 1: wider than the
    default init, so its audio scores rarely tie and selection tests check the rules, not rounding."""

    def build(hidden: int) -> VisionGuidedAudioSelector:
        gen = torch.Generator().manual_seed(1)
        selector = VisionGuidedAudioSelector(hidden).eval()
        with torch.no_grad():
            for p in selector.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        return selector

    return build
