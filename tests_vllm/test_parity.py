"""Greedy output and M-RoPE positions of our vLLM thinker against transformers (+ omnisift.attach)."""

from __future__ import annotations

import cases
import pytest
import torch
from conftest import Engine, request

from omnisift.vllm import engine_args, request_kwargs


@pytest.fixture(scope="module")
def plain(reference_dir):
    engine = Engine(reference_dir / "model", **engine_args(None))
    yield engine
    engine.close()


def test_zero_drop_equals_stock_transformers_tokens_and_positions(plain, references):
    ref = references["zero_drop"]
    assert plain.run([request(cases.CASES["zero_drop"])]) == [ref["stock"]]
    assert ref["attach"] == ref["stock"]
    prefill = plain.positions()[0]
    assert torch.equal(prefill, torch.tensor(ref["positions"]))

