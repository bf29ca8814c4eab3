"""Command-only dependencies (matplotlib, accelerate, tqdm) are extras: import them through `require`.

The core library (`import omnisift`, `attach`, `compress`) needs torch, transformers, safetensors and
numpy only; the benchmarks' figures, the evaluation report, training and the progress bars import their
package here, so that a missing one says which extra to install instead of a bare ModuleNotFoundError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ModuleNotFoundError):
    """A command needs a package of an optional extra that is not installed."""


def require(module: str, extra: str) -> ModuleType:
    """Import `module`; if its package is missing, raise MissingExtraError naming ``omnisift[extra]``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if not missing or not (module == missing or module.startswith(missing + ".")):
            raise  # something the package itself imports is missing: not ours to explain
        raise MissingExtraError(
            f"{missing} is not installed; this needs the '{extra}' extra: pip install 'omnisift[{extra}]'",
            name=missing,
        ) from error
