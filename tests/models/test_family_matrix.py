"""Every registered model family through the same checks (like the method matrix in tests/methods): a new
family is tested by registering its adapter (with a tiny fixture) in `omnisift.models.ADAPTERS`.

Layout against the family's `get_rope_index`, keep-mask parity with the literal reference, zero-drop bit
identity, compressed prefill against a hand-built compact call, generate against a manual decode, batch
invariance, per-visual-token features (DeepStack) cut with the tokens, and every pre-LLM method through
`attach` and `generate` at OmniSIFT's budget.

Inputs are real generated clips through the family's tiny processor (`omnisift.inputs.prepare_inputs`), so
the positions are the family's own `get_rope_index` (captured where the language model receives them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from transformers import DynamicCache

from omnisift import CompressionConfig, attach, keep_mask, load_model
from omnisift.inner import InnerLLMMethod
from omnisift.inputs import prepare_inputs
from omnisift.layout import build_layout
from omnisift.methods import METHODS, available_methods, shortcuts_for
from omnisift.models import ADAPTERS, ModelAdapter, find_adapter
from omnisift.testing.clips import make_clip
from omnisift.testing.hooks import language_model_inputs
from omnisift.testing.reference import literal_keep_mask

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROMPTS = ["Describe it.", "What sound?", "Count the squares."]
CLIPS = [(3.0, 4.0, 330.0), (4.5, 4.0, 520.0), (2.0, 6.0, 700.0)]  # seconds, fps, tone


@dataclass
class Family:
    adapter: type[ModelAdapter]
    loaded: Any
    selector: torch.nn.Module
    clips: list
    inputs: dict[str, Any]
    seen: dict[str, Any]

    @property
    def thinker(self) -> torch.nn.Module:
        return self.loaded.thinker

    @property
    def ids(self):
        return find_adapter(self.thinker).token_ids


def _model_inputs(batch) -> dict[str, Any]:
    """`prepare_inputs`' batch without its flag (the tests pass use_audio_in_video=True themselves)."""
    out = dict(batch)
    assert out.pop("use_audio_in_video") is True
    return out


@pytest.fixture(scope="module", params=ADAPTERS, ids=lambda a: a.family)
def family(request, tmp_path_factory, spread_selector) -> Family:
    adapter = request.param
    loaded = load_model(adapter.tiny_names[0])
    root = tmp_path_factory.mktemp(adapter.family)
    clips = [make_clip(root / f"{i}.mp4", s, fps=f, tone_hz=t) for i, (s, f, t) in enumerate(CLIPS)]
    inputs = _model_inputs(prepare_inputs(loaded, clips, PROMPTS))
    selector = spread_selector(loaded.thinker.config.text_config.hidden_size)
    return Family(adapter, loaded, selector, clips, inputs, language_model_inputs(loaded.thinker, inputs))


def greedy(thinker, inputs: dict[str, Any], n: int = 4) -> torch.Tensor:
    with torch.no_grad():
        out = thinker.generate(**inputs, use_audio_in_video=True, max_new_tokens=n, do_sample=False)
    return out[:, inputs["input_ids"].shape[1] :]


def literal_groups(ids: list[int], ts: list[float], video: int, audio: int) -> list[tuple[list, list]]:
    """Per 2-second group, written from the rules: its grids (video tokens sharing one t, in t order, two
    per group) and its audio (t from the group's first grid up to the next group's first grid)."""
    grid_ts = sorted({t for i, t in zip(ids, ts, strict=True) if i == video})
    starts = grid_ts[::2]
    out = []
    for g, t0 in enumerate(starts):
        t1 = starts[g + 1] if g + 1 < len(starts) else float("inf")
        grids = [
            [k for k, (i, t) in enumerate(zip(ids, ts, strict=True)) if i == video and t == u]
            for u in grid_ts[2 * g : 2 * g + 2]
        ]
        sound = [k for k, (i, t) in enumerate(zip(ids, ts, strict=True)) if i == audio and t0 <= t < t1]
        out.append((grids, sound))
    return out


def test_layout_matches_the_familys_get_rope_index(family) -> None:
    ids, inputs, seen = family.ids, family.inputs, family.seen
    positions = seen["position_ids"][-3:] if seen["position_ids"].shape[0] > 3 else seen["position_ids"]
    layout = build_layout(inputs["input_ids"], positions[0], inputs["attention_mask"], ids)
    n = inputs["input_ids"].shape[1]
    index, present = layout.grid_index_matrix()
    for b in range(inputs["input_ids"].shape[0]):
        valid = inputs["attention_mask"][b].bool()
        row_ids = [
            i if v else -1 for i, v in zip(inputs["input_ids"][b].tolist(), valid.tolist(), strict=True)
        ]
        want = literal_groups(row_ids, positions[0, b].tolist(), ids.video, ids.audio)
        got = []
        for q in torch.nonzero(layout.group_batch == b).squeeze(1).tolist():
            grids = torch.nonzero(layout.grid_group == q).squeeze(1).tolist()
            members = [(index[g][present[g]] % n).tolist() for g in grids]
            got.append((members, (layout.audio_flat[layout.audio_group == q] % n).tolist()))
        assert got == want and len(want) >= 1, b
        assert all(sound for _, sound in want)  # every group has audio: the track is interleaved


@pytest.mark.parametrize("video_drop,audio_drop", [(0.7, 0.3), (0.5, 0.5), (0.29, 0.0)])
def test_keep_mask_matches_the_literal_reference(family, video_drop, audio_drop) -> None:
    seen, inputs = family.seen, family.inputs
    positions = seen["position_ids"][-3:] if seen["position_ids"].shape[0] > 3 else seen["position_ids"]
    # The family's real layout and positions, random embeddings: the tiny encoders' outputs are nearly
    # alike, and near-ties in the selector's scores would test rounding, not the rules.
    embeds = torch.randn(seen["inputs_embeds"].shape, generator=torch.Generator().manual_seed(7))
    args = (embeds, inputs["input_ids"], positions)
    settings = dict(
        selector=family.selector, video_drop=video_drop, audio_drop=audio_drop, token_ids=family.ids
    )
    got = keep_mask(*args, attention_mask=inputs["attention_mask"], **settings)
    want = literal_keep_mask(*args, inputs["attention_mask"], **settings)
    assert torch.equal(got, want)
    assert not got[inputs["input_ids"] == family.ids.video].all()


def test_zero_drop_is_bit_identical(family) -> None:
    thinker, inputs = family.thinker, family.inputs
    with torch.no_grad():
        stock = thinker(**inputs, use_audio_in_video=True).logits
    stock_tokens = greedy(thinker, inputs)
    with attach(
        thinker, CompressionConfig(video_drop=0.0, audio_drop=0.0, selector=family.selector)
    ) as handle:
        with torch.no_grad():
            ours = thinker(**inputs, use_audio_in_video=True).logits
        our_tokens = greedy(thinker, inputs)
        assert all(s.retained == 1.0 for s in handle.last_stats)
    assert torch.equal(stock, ours) and torch.equal(stock_tokens, our_tokens)


def compact_by_hand(seen: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """The compact language-model call written per sample: kept tokens in order, left padded, and the
    family's extra per-token inputs (DeepStack) cut to the kept tokens."""
    kept = keep & seen["attention_mask"].bool()
    rows = [torch.nonzero(kept[b]).squeeze(1) for b in range(kept.shape[0])]
    width, batch = max(len(r) for r in rows), kept.shape[0]
    embeds = torch.zeros(batch, width, seen["inputs_embeds"].shape[-1])
    positions = torch.ones(seen["position_ids"].shape[0], batch, width, dtype=seen["position_ids"].dtype)
    attn = torch.zeros(batch, width, dtype=torch.long)
    call: dict[str, Any] = {}
    visual = seen.get("visual_pos_masks")
    if visual is not None:
        call["visual_pos_masks"] = torch.zeros(batch, width, dtype=torch.bool)
        kept_visual = torch.cat([keep[b][visual[b]] for b in range(batch)])
        call["deepstack_visual_embeds"] = [f[kept_visual] for f in seen["deepstack_visual_embeds"]]
    for b, r in enumerate(rows):
        pad = width - len(r)
        embeds[b, pad:] = seen["inputs_embeds"][b, r]
        positions[:, b, pad:] = seen["position_ids"][:, b, r]
        attn[b, pad:] = 1
        if visual is not None:
            call["visual_pos_masks"][b, pad:] = visual[b, r]
    return {"inputs_embeds": embeds, "position_ids": positions, "attention_mask": attn, **call}


def run_lm(thinker, call: dict[str, Any], **extra: Any):
    with torch.no_grad():
        out = thinker.model.language_model(**call, **extra)
    return thinker.lm_head(out.last_hidden_state)


CONFIG = dict(video_drop=0.6, audio_drop=0.4)


def _keep(family) -> torch.Tensor:
    seen, inputs = family.seen, family.inputs
    positions = seen["position_ids"][-3:] if seen["position_ids"].shape[0] > 3 else seen["position_ids"]
    return keep_mask(
        seen["inputs_embeds"], inputs["input_ids"], positions, selector=family.selector,
        attention_mask=inputs["attention_mask"], token_ids=family.ids, **CONFIG,
    )  # fmt: skip


def test_compressed_prefill_equals_a_hand_built_compact_call(family) -> None:
    call = compact_by_hand(family.seen, _keep(family))
    want = run_lm(family.thinker, call)
    with attach(family.thinker, CompressionConfig(selector=family.selector, **CONFIG)) as handle:
        with torch.no_grad():
            got = family.thinker(**family.inputs, use_audio_in_video=True).logits
        assert all(s.length_after < s.length_before for s in handle.last_stats)
    valid = call["attention_mask"].bool()
    assert got.shape == want.shape
    torch.testing.assert_close(got[valid], want[valid], rtol=0, atol=1e-5)


def test_generate_equals_a_manual_greedy_decode(family) -> None:
    thinker, steps = family.thinker, 4
    call = compact_by_hand(family.seen, _keep(family))
    cache = DynamicCache(config=thinker.config.text_config)
    logits = run_lm(thinker, call, past_key_values=cache, use_cache=True)
    mask = call["attention_mask"]
    next_pos = torch.where(mask.bool(), call["position_ids"][-3:].amax(0), -1).amax(1)
    tokens = [logits[:, -1].argmax(-1)]
    lm = thinker.model.language_model
    for step in range(1, steps):
        mask = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype=mask.dtype)], 1)
        pos = (next_pos + step).view(1, -1, 1).expand(3, -1, 1).to(call["position_ids"].dtype)
        with torch.no_grad():
            out = lm(
                inputs_embeds=lm.embed_tokens(tokens[-1]).unsqueeze(1), position_ids=pos, attention_mask=mask,
                past_key_values=cache, use_cache=True,
            )  # fmt: skip
        tokens.append(thinker.lm_head(out.last_hidden_state)[:, -1].argmax(-1))
    with attach(thinker, CompressionConfig(selector=family.selector, **CONFIG)):
        got = greedy(thinker, family.inputs, n=steps)
    assert torch.equal(got, torch.stack(tokens, 1))


def test_each_sample_alone_equals_the_batch(family) -> None:
    thinker = family.thinker
    with attach(thinker, CompressionConfig(selector=family.selector, **CONFIG)) as handle:
        with torch.no_grad():
            last = thinker(**family.inputs, use_audio_in_video=True).logits[:, -1]
        together = greedy(thinker, family.inputs)
        stats = handle.last_stats
        for i, (clip, prompt) in enumerate(zip(family.clips, PROMPTS, strict=True)):
            alone = _model_inputs(prepare_inputs(family.loaded, clip, prompt))
            with torch.no_grad():
                alone_last = thinker(**alone, use_audio_in_video=True).logits[:, -1]
            assert handle.last_stats[0] == stats[i]
            torch.testing.assert_close(alone_last[0], last[i], rtol=1e-4, atol=1e-4)
            assert torch.equal(greedy(thinker, alone)[0], together[i]), i


def test_misplaced_deepstack_features_change_the_output(family) -> None:
    """For a family whose language model takes per-visual-token features (DeepStack), the compact-call test
    would fail if they were left unfiltered: misaligned features move the logits, and attach fails without
    the adapter's filter."""
    seen, keep = family.seen, _keep(family)
    visual = seen.get("visual_pos_masks")
    if visual is None:
        pytest.skip(f"{family.adapter.family} has no per-visual-token features")
    assert not keep[visual].all() and keep[visual].any()
    call = compact_by_hand(seen, keep)
    want = run_lm(family.thinker, call)
    count = call["deepstack_visual_embeds"][0].shape[0]
    shifted = dict(call, deepstack_visual_embeds=[f[:count] for f in seen["deepstack_visual_embeds"]])
    wrong = run_lm(family.thinker, shifted)
    valid = call["attention_mask"].bool()
    assert (wrong[valid] - want[valid]).abs().max() > 1e-3
    with attach(family.thinker, CompressionConfig(selector=family.selector, **CONFIG)) as handle:
        handle.adapter.filter_inputs = lambda kwargs, keep, source: None  # features left unfiltered
        with pytest.raises((RuntimeError, IndexError)):
            with torch.no_grad():
                family.thinker(**family.inputs, use_audio_in_video=True)


BUDGET = dict(video_drop=0.5, audio_drop=0.3)  # DyCoke keeps every fourth grid: at most half of a 2-grid clip
PRE_LLM_METHODS = [m for m in available_methods() if not issubclass(METHODS[m], InnerLLMMethod)]


@pytest.fixture(scope="module")
def omnisift_kept(family) -> list[tuple[int, int]]:
    """(video, audio) tokens OmniSIFT keeps per sample at `BUDGET`: the budget every method must meet."""
    with attach(family.thinker, CompressionConfig(selector=family.selector, **BUDGET)) as handle:
        with torch.no_grad():
            family.thinker(**family.inputs, use_audio_in_video=True)
    return [(s.video_after, s.audio_after) for s in handle.last_stats]


@pytest.mark.parametrize("method", PRE_LLM_METHODS)  # inner-LLM methods have their own budget: tests/inner
def test_every_method_generates_at_omnisift_budget(family, omnisift_kept, method: str) -> None:
    thinker, inputs = family.thinker, family.inputs
    config = CompressionConfig(
        method=method, **BUDGET, **shortcuts_for(method, selector=family.selector, seed=3)
    )
    with attach(thinker, config) as handle:
        with torch.no_grad():
            out = thinker.generate(**inputs, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
        stats = handle.last_stats
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3
    assert [(s.video_after, s.audio_after) for s in stats] == omnisift_kept, method
    assert all(s.length_after < s.length_before for s in stats), method


def test_omnizip_reads_the_audio_encoder_attention(family, caplog) -> None:
    config = CompressionConfig(method="omnizip", **BUDGET)
    with caplog.at_level("INFO"), attach(family.thinker, config) as handle:
        with torch.no_grad():
            family.thinker(**family.inputs, use_audio_in_video=True)
        recorder = handle.method._recorder
        assert recorder is not None and recorder.scores is None  # consumed
    assert handle.method._recorder is None  # released by remove()
    assert "proxy" not in caplog.text
