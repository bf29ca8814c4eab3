import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def thinker():
    """The tiny position-sensitive Qwen2.5-Omni thinker (fresh per test module)."""
    from omnisift.models.qwen2_5_omni.fixtures import tiny_thinker

    return tiny_thinker(seed=0)


@pytest.fixture(scope="module")
def processor():
    """The offline tiny Qwen2.5-Omni processor."""
    from omnisift.models.qwen2_5_omni.fixtures import tiny_processor

    return tiny_processor()
