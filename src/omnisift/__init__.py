"""omnisift: drop redundant audio and video tokens before the LLM of omni-modal models (OmniSIFT)."""

from .api import SelectionResult, compress_inputs, keep_mask, select_tokens
from .attach import CallStats, CompressionHandle, attach, load_pretrained
from .budget import Budget, resolve_budget
from .compress import Compressed, SampleStats, compress
from .config import CompressionConfig
from .layout import Layout, TokenIds, build_layout
from .loading import LoadedModel, load_model
from .methods import SelectionMethod, available_methods, get_method
from .models import ModelAdapter, find_adapter
from .selector import VisionGuidedAudioSelector, load_selector, save_selector
from .visualize import show

__version__ = "0.1.0"

__all__ = [
    "CallStats",
    "CompressionConfig",
    "CompressionHandle",
    "attach",
    "load_pretrained",
    "Budget",
    "Compressed",
    "Layout",
    "SampleStats",
    "SelectionResult",
    "TokenIds",
    "VisionGuidedAudioSelector",
    "LoadedModel",
    "ModelAdapter",
    "SelectionMethod",
    "available_methods",
    "find_adapter",
    "load_model",
    "build_layout",
    "compress",
    "compress_inputs",
    "get_method",
    "keep_mask",
    "load_selector",
    "resolve_budget",
    "save_selector",
    "select_tokens",
    "show",
]
