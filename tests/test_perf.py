"""Structural performance checks (no timings): the selection's work does not grow with the number of chunks.

- Operator count, read with torch.profiler: `keep_mask` on a 5-chunk and a 50-chunk clip dispatches the
  same operators (up to a few), while the literal per-group loop of `omnisift.testing.reference` grows with the
  chunks (3 vs 12 chunks, to stay fast) (which shows the counter sees a per-chunk loop when there is one).
- Host syncs, CUDA only: under `torch.cuda.set_sync_debug_mode("warn")` every synchronizing call warns;
  `keep_mask` makes the same small number of them at 5 and 50 chunks.
"""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from omnisift import VisionGuidedAudioSelector, keep_mask
from omnisift.models.qwen2_5_omni.synthetic import av_sample, build_batch
from omnisift.testing.reference import literal_keep_mask

HIDDEN, PER_GRID = 32, 4
MAX_SYNCS = 24


def _inputs(chunks: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    batch = build_batch([av_sample(2 * chunks, PER_GRID)], HIDDEN, device=device)
    return batch.as_kwargs()


def _op_counts(fn, inputs: dict[str, torch.Tensor], selector: torch.nn.Module) -> Counter:
    with torch.inference_mode():
        fn(**inputs, selector=selector)  # warm-up: lazy initialisations out of the count
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn(**inputs, selector=selector)
    return Counter(event.name for event in prof.events() if event.name.startswith("aten::"))


@pytest.fixture(scope="module")
def selector() -> torch.nn.Module:
    torch.manual_seed(0)
    return VisionGuidedAudioSelector(HIDDEN).eval()


def test_keep_mask_op_count_does_not_grow_with_chunks(selector):
    small = _op_counts(keep_mask, _inputs(5), selector)
    large = _op_counts(keep_mask, _inputs(50), selector)
    total_small, total_large = sum(small.values()), sum(large.values())
    differing = {op: (small[op], large[op]) for op in small.keys() | large.keys() if small[op] != large[op]}
    assert abs(total_large - total_small) <= max(5, 0.01 * total_small), (
        f"op count grows with the number of chunks: {total_small} at 5 chunks, {total_large} at 50; "
        f"differing ops {differing}"
    )


def test_literal_loop_op_count_grows_with_chunks(selector):
    """Control: the counter does see a per-chunk loop."""
    inputs = {k: v for k, v in _inputs(3).items() if k != "attention_mask"}
    small = sum(_op_counts(literal_keep_mask, inputs, selector).values())
    inputs = {k: v for k, v in _inputs(12).items() if k != "attention_mask"}
    large = sum(_op_counts(literal_keep_mask, inputs, selector).values())
    assert large > 3 * small


def _count_syncs(inputs: dict[str, torch.Tensor], selector: torch.nn.Module) -> int:
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            keep_mask(**inputs, selector=selector)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="host-sync counting needs CUDA (none on this machine)"
)
def test_keep_mask_host_syncs_constant_on_cuda(selector):
    cuda_selector = selector.to("cuda")
    small_inputs, large_inputs = _inputs(5, "cuda"), _inputs(50, "cuda")
    with torch.inference_mode():
        keep_mask(**small_inputs, selector=cuda_selector)  # warm-up (lazy CUDA initialisation)
    small = _count_syncs(small_inputs, cuda_selector)
    large = _count_syncs(large_inputs, cuda_selector)
    assert large <= small + 1, (
        f"host syncs grow with the number of chunks: {small} at 5 chunks, {large} at 50"
    )
    assert large <= MAX_SYNCS, f"{large} host syncs, expected at most {MAX_SYNCS}"
