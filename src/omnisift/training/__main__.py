"""`python -m omnisift.training train ...` (also `accelerate launch -m omnisift.training train ...`)."""

from .cli import main

raise SystemExit(main())
