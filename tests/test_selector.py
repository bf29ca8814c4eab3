"""The selector: published parameter names and counts, checkpoint IO, batched scoring."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from omnisift import VisionGuidedAudioSelector, load_selector, save_selector
from omnisift.selector import CHECKPOINT_PREFIX


@pytest.mark.parametrize("hidden, count", [(3584, 4_856_321), (2048, 3_283_457)])
def test_parameter_counts(hidden: int, count: int) -> None:
    assert sum(p.numel() for p in VisionGuidedAudioSelector(hidden).parameters()) == count


def test_published_parameter_names() -> None:
    names = set(VisionGuidedAudioSelector(64).state_dict())
    assert names == {
        "v_proj.weight", "v_proj.bias", "a_proj.weight", "a_proj.bias",
        "v_norm.weight", "v_norm.bias", "a_norm.weight", "a_norm.bias",
        "cross_attn.in_proj_weight", "cross_attn.in_proj_bias",
        "cross_attn.out_proj.weight", "cross_attn.out_proj.bias",
        "post_attn_norm.weight", "post_attn_norm.bias",
        "score_head.0.weight", "score_head.0.bias", "score_head.2.weight", "score_head.2.bias",
    }  # fmt: skip


def test_forward_matches_the_published_formula() -> None:
    sel = VisionGuidedAudioSelector(40, width=16, heads=4).eval()
    anchors, audio = torch.randn(7, 40), torch.randn(11, 40)
    a = sel.a_norm(sel.a_proj(audio))
    v = sel.v_norm(sel.v_proj(anchors))
    attn, _ = sel.cross_attn(a[None], v[None], v[None])
    want = torch.sigmoid(sel.score_head(sel.post_attn_norm(attn[0] + a))).squeeze(-1)
    torch.testing.assert_close(sel(anchors, audio), want)


def test_batched_scoring_equals_group_by_group() -> None:
    sel = VisionGuidedAudioSelector(40, width=16, heads=4).eval()
    anchor_sizes, audio_sizes = [3, 1, 7, 2], [5, 9, 2, 13]
    anchors = [torch.randn(n, 40) for n in anchor_sizes]
    audio = [torch.randn(n, 40) for n in audio_sizes]
    with torch.no_grad():
        batched = sel.score_groups(
            torch.cat(anchors),
            torch.repeat_interleave(torch.arange(4), torch.tensor(anchor_sizes)),
            torch.cat(audio),
            torch.repeat_interleave(torch.arange(4), torch.tensor(audio_sizes)),
            4,
        )
        single = torch.cat([sel(v, a) for v, a in zip(anchors, audio)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_round_trip_single_file(tmp_path) -> None:
    sel = VisionGuidedAudioSelector(48, width=16, heads=4)
    path = save_selector(sel, tmp_path / "sel.safetensors")
    loaded = load_selector(path)
    assert loaded.hidden_size == 48
    for key, value in sel.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_bare_keys_accepted(tmp_path) -> None:
    sel = VisionGuidedAudioSelector(24, width=16, heads=4)
    path = save_selector(sel, tmp_path / "bare.safetensors", prefixed=False)
    assert torch.equal(load_selector(path).v_proj.weight, sel.v_proj.weight)


def test_sharded_folder_opens_only_selector_shards(tmp_path) -> None:
    sel = VisionGuidedAudioSelector(32, width=16, heads=4)
    state = {CHECKPOINT_PREFIX + k: v.contiguous() for k, v in sel.state_dict().items()}
    save_file(state, str(tmp_path / "model-00002-of-00002.safetensors"))
    # a shard without selector keys that must never be opened: it is not even valid safetensors
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"not a safetensors file")
    weight_map = {k: "model-00002-of-00002.safetensors" for k in state}
    weight_map["thinker.model.embed_tokens.weight"] = "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    loaded = load_selector(tmp_path, hidden_size=32)
    assert torch.equal(loaded.a_proj.weight, sel.a_proj.weight)


def test_errors_name_the_problem(tmp_path) -> None:
    sel = VisionGuidedAudioSelector(32, width=16, heads=4)
    state = {CHECKPOINT_PREFIX + k: v.contiguous() for k, v in sel.state_dict().items()}
    missing = dict(state)
    del missing[CHECKPOINT_PREFIX + "score_head.2.bias"]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="missing keys.*score_head.2.bias"):
        load_selector(tmp_path / "missing.safetensors")
    extra = dict(state)
    extra[CHECKPOINT_PREFIX + "score_head.4.weight"] = torch.zeros(1)
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ValueError, match="unexpected keys.*score_head.4.weight"):
        load_selector(tmp_path / "extra.safetensors")
    wrong = dict(state)
    wrong[CHECKPOINT_PREFIX + "a_proj.weight"] = torch.zeros(16, 31)
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ValueError, match="wrong shapes.*a_proj.weight"):
        load_selector(tmp_path / "wrong.safetensors")
    save_file({"model.norm.weight": torch.ones(4)}, str(tmp_path / "none.safetensors"))
    with pytest.raises(ValueError, match="no selector weights"):
        load_selector(tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match="hidden size 32 but the model has 64"):
        load_selector(save_selector(sel, tmp_path / "ok.safetensors"), hidden_size=64)
    with pytest.raises(FileNotFoundError):
        load_selector(tmp_path / "absent")
