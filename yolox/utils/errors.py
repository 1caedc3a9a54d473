"""Errors that are the user's to fix, shown by the tools without a traceback."""


class UserError(ValueError):
    """A mistake in the user's input (file, key, value); the message names it and says what to do."""
