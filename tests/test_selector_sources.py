"""One way to get a selector (`source_selector`): files, folders, modules, state dicts, random with a seed."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from omnisift import VisionGuidedAudioSelector, save_selector
from omnisift.selector import RANDOM_SELECTOR, source_selector

HIDDEN = 16


@pytest.fixture
def saved(tmp_path):
    return save_selector(VisionGuidedAudioSelector(HIDDEN, 32, 4), tmp_path / "good.safetensors")


def _broken(tmp_path, saved, kind: str):
    path = tmp_path / f"{kind}.safetensors"
    data = saved.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pickled":
        path.write_bytes(pickle.dumps({"v_proj.weight": [1.0]}))
    elif kind == "torch-save":
        torch.save({"v_proj.weight": torch.zeros(2)}, path)
    elif kind == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    return path


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("empty", "is empty"),
        ("truncated", "truncated or corrupt"),
        ("pickled", "pickle"),
        ("torch-save", "pickle or torch.save"),
        ("garbage", "not a readable safetensors file"),
    ],
)
def test_a_broken_selector_file_is_named_with_what_is_wrong(tmp_path, saved, kind, what) -> None:
    path = _broken(tmp_path, saved, kind)
    with pytest.raises(ValueError) as error:
        source_selector(path, hidden_size=HIDDEN)
    assert str(path) in str(error.value) and what in str(error.value)
    assert "SafetensorError" not in str(error.value)


def test_a_broken_shard_in_a_folder_is_named(tmp_path, saved) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=f"{folder / 'model.safetensors'} is empty"):
        source_selector(folder, hidden_size=HIDDEN)


def test_every_source_gives_the_same_weights(tmp_path, saved) -> None:
    from_file = source_selector(saved, hidden_size=HIDDEN)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_file({"thinker.model.x": torch.zeros(1), **_prefixed(from_file)}, str(folder / "model.safetensors"))
    from_folder = source_selector(folder, hidden_size=HIDDEN)
    from_state = source_selector(from_file.state_dict(), hidden_size=HIDDEN)
    assert source_selector(from_file, hidden_size=HIDDEN) is from_file
    for other in (from_folder, from_state):
        for key, value in from_file.state_dict().items():
            assert torch.equal(other.state_dict()[key], value), key


def _prefixed(selector):
    return {f"thinker.compressor.{k}": v.contiguous() for k, v in selector.state_dict().items()}


def test_state_dicts_get_the_same_key_and_shape_checks(saved) -> None:
    state = source_selector(saved).state_dict()
    with pytest.raises(ValueError, match="missing keys.*score_head"):
        source_selector({k: v for k, v in state.items() if not k.startswith("score_head")})
    with pytest.raises(ValueError, match="hidden size 16 but the model has 24"):
        source_selector(state, hidden_size=24)
    with pytest.raises(ValueError, match="hidden size 16 but the model has 24"):
        source_selector(VisionGuidedAudioSelector(HIDDEN, 32, 4), hidden_size=24)


def test_a_random_selector_needs_a_seed_and_leaves_the_global_state_alone() -> None:
    with pytest.raises(ValueError, match="explicit seed"):
        source_selector(RANDOM_SELECTOR, hidden_size=HIDDEN)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    one = source_selector(RANDOM_SELECTOR, hidden_size=HIDDEN, seed=5)
    assert torch.equal(torch.rand(3), expected)
    two = source_selector(RANDOM_SELECTOR, hidden_size=HIDDEN, seed=5)
    three = source_selector(RANDOM_SELECTOR, hidden_size=HIDDEN, seed=6)
    assert torch.equal(one.v_proj.weight, two.v_proj.weight)
    assert not torch.equal(one.v_proj.weight, three.v_proj.weight)


def test_the_demo_loader_leaves_the_global_random_state_alone() -> None:
    from omnisift.demo import _load

    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    _load("tiny", None, "cpu", torch.float32)
    assert torch.equal(torch.rand(3), expected)
