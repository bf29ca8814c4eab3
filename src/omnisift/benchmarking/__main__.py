"""`python -m omnisift.benchmarking ...` (same arguments as `omnisift bench`)."""

import sys

from .cli import main

sys.exit(main())
