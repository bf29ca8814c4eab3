"""The `lmms_eval.models` entry point: tells lmms-eval that `--model omnisift` is `LmmsEvalModel`.

Naming the class by path keeps lmms-eval's model listing cheap: torch and the model load only when
the model is chosen. lmms-eval is imported inside the function: lmms-eval loads this entry point while
its own `lmms_eval.models` package is still initialising.
"""

from __future__ import annotations

from typing import Any

__all__ = ["manifests"]


def manifests() -> list[Any]:
    """The `ModelManifest`s lmms-eval registers (one: `omnisift`)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id="omnisift", simple_class_path="omnisift.lmms_eval.model.LmmsEvalModel")]
