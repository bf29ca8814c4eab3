"""Token selection methods, one file each, registered by name."""

from .base import METHODS, Selection, SelectionMethod, available_methods, get_method, register
from .omnisift import OmniSIFT

__all__ = [
    "METHODS",
    "Selection",
    "SelectionMethod",
    "available_methods",
    "get_method",
    "register",
    "OmniSIFT",
]
