"""`python -m omnisift ...`: the `omnisift` command, for environments where its script is not on PATH."""

import sys

from omnisift.cli import main

sys.exit(main())
