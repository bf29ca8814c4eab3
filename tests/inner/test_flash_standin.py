"""Inner-LLM drops under flash attention's contract (2-D padding masks, unpadded per sample), on CPU through
a stand-in registered with transformers (`flash_standin.py`): the same kept tokens, logits and greedy
tokens as SDPA on a left-padded batch. No flash-attn kernel runs here (no GPU on this machine)."""

from __future__ import annotations

import flash_standin
import pytest
import torch
from inner_helpers import LAYERS, SEATS_PARAMS

from omnisift import CompressionConfig, attach
from omnisift.models.qwen2_5_omni import fixtures as tiny

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize(("method", "inputs"), [("seats", "batch"), ("fastv-om", "single")])
def test_flash_contract_matches_sdpa(method, inputs, batch, singles) -> None:
    """A left-padded batch (2-D masks after every drop) and one sample (no padding: the mask is None and
    flash would read sequence boundaries from position ids)."""
    batch = batch if inputs == "batch" else singles[0]
    params = dict(SEATS_PARAMS) if method == "seats" else {}
    results = {}
    for impl in ("sdpa", flash_standin.register()):
        model = tiny.tiny_thinker(seed=0, num_layers=LAYERS, attn_implementation=impl)
        flash_standin.calls.clear()
        with attach(model, CompressionConfig(method=method, retain=0.25, method_params=params)) as handle:
            with torch.no_grad():
                logits = model(**batch, use_audio_in_video=True).logits[:, -1]
            kept = [{k: v.tolist() for k, v in sample.items()} for sample in handle.last_kept_positions]
            tokens = model.generate(**batch, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
        results[impl] = (kept, logits, tokens)
        if impl != "sdpa":
            assert flash_standin.calls
            if inputs == "batch":
                assert any(shape is not None and len(shape) == 2 for shape in flash_standin.calls)
    (kept_a, logits_a, tokens_a), (kept_b, logits_b, tokens_b) = results.values()
    assert kept_a == kept_b
    assert len(kept_a[0]) > 1  # drops inside the LLM happened
    torch.testing.assert_close(logits_a, logits_b, atol=2e-4, rtol=1e-4)
    assert torch.equal(tokens_a, tokens_b)
