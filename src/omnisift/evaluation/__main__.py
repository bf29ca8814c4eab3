"""`python -m omnisift.evaluation eval|report ...` (also the module form for torchrun / accelerate launch)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
