"""Token selection methods, one file each; importing a file registers its methods by name."""

from . import ablations, dycoke, evs, fastv, omnisift, omnizip, random_baseline, seats, vidcom2  # noqa: F401  (registry)
from .base import (
    METHODS,
    Selection,
    SelectionMethod,
    available_methods,
    build_method,
    get_method,
    method_settings,
    parse_method_params,
    register,
    setting_fields,
    shortcuts_for,
    takes_setting,
)
from .catalog import describe_methods
from .omnisift import OmniSIFT

__all__ = [
    "METHODS",
    "OmniSIFT",
    "Selection",
    "SelectionMethod",
    "available_methods",
    "build_method",
    "describe_methods",
    "get_method",
    "method_settings",
    "parse_method_params",
    "register",
    "setting_fields",
    "shortcuts_for",
    "takes_setting",
]
