"""Shared fixtures of the method tests."""

from __future__ import annotations

import pytest
import torch
from methods_helpers import HIDDEN

from omnisift import VisionGuidedAudioSelector


@pytest.fixture(scope="session")
def selector() -> VisionGuidedAudioSelector:
    torch.manual_seed(1234)
    return VisionGuidedAudioSelector(HIDDEN).eval()
