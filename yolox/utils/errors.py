"""Errors that are the user's to fix, shown by the tools without a traceback."""

import sys
from collections.abc import Callable


class UserError(ValueError):
    """A mistake in the user's input (file, key, value); the message names it and says what to do."""


def run_as_command(action: Callable[[], object], expected: tuple[type[Exception], ...] = (UserError,)) -> int:
    """Run a tool's ``action``: exit code 0, or 2 after one ``error: ...`` line on stderr for an ``expected`` error."""
    try:
        action()
    except expected as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
