"""Command-line code shared by `omnisift` and each `python -m omnisift.<part>`: how a command ends on a
user's mistake or a setup problem. Its one line on stderr is the command's output (the library itself only
logs); the traceback is logged at DEBUG (`-v`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from ._extras import MissingExtraError

__all__ = ["USER_ERRORS", "run_command"]

logger = logging.getLogger(__name__)

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, MissingExtraError)
"""What a command reports in one line: bad values, unreadable or unwritable files, refused runs, missing
extras. Anything else is a bug in omnisift and keeps its traceback."""


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace, prog: str) -> int:
    """Run a parsed subcommand; a `USER_ERRORS` error becomes `prog: error: ...` and exit code 2."""
    try:
        return int(func(args) or 0)
    except USER_ERRORS as error:
        logger.debug("%s failed", prog, exc_info=True)
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
