"""The `lmms_eval.models` entry point: tells lmms-eval that `--model omnisift` is `OmniSIFT`.

Naming the class by path keeps lmms-eval's model listing cheap: torch and the model load only when
the model is chosen.
"""

from lmms_eval.models.registry_v2 import ModelManifest

__all__ = ["manifests"]


def manifests() -> list[ModelManifest]:
    return [ModelManifest(model_id="omnisift", simple_class_path="omnisift.lmms_eval.model.OmniSIFT")]
