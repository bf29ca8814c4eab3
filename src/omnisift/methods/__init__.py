"""Token selection methods, one file each, registered by name."""

from .ablations import OmniSIFTAudioOnly, OmniSIFTNoSpatial, OmniSIFTNoTemporal  # noqa: F401
from .base import METHODS, Selection, SelectionMethod, available_methods, get_method, register
from .catalog import describe_methods  # noqa: F401
from .dycoke import DyCoke  # noqa: F401
from .evs import EVS  # noqa: F401
from .omnisift import OmniSIFT
from .omnizip import OmniZip  # noqa: F401
from .random_baseline import RandomSelection  # noqa: F401
from .vidcom2 import VidCom2  # noqa: F401

__all__ = [
    "METHODS",
    "Selection",
    "SelectionMethod",
    "available_methods",
    "get_method",
    "register",
    "OmniSIFT",
]
