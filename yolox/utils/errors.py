"""Errors that are the user's to fix, the exit codes of the commands, and the one runner that maps one to the other.

Only the standard library is imported here: the torch-free ONNX runner uses the same runner as the commands.
"""

import sys
from collections.abc import Callable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(ValueError):
    """A mistake in the user's input (file, key, value); the message names it and says what to do."""


class CommandFailed(RuntimeError):
    """A command ends with ``exit_code``; an empty message means the cause was already printed."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# Mistakes the user can fix from the message alone: a bad value, a missing file, a folder that cannot be
# written (OSError covers a read-only path, a folder where a file is expected, a full disk).
USER_ERRORS: tuple[type[Exception], ...] = (UserError, OSError)


def error_text(err: BaseException) -> str:
    """One line for ``err``: an OS error as ``<file>: <reason>``, any other as its message."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def report_error(err: BaseException, prefix: str = "") -> None:
    """Print ``err`` as the one ``error: ...`` line a command shows for a mistake the user can fix."""
    print(f"{prefix}error: {error_text(err)}", file=sys.stderr)


def run_command(action: Callable[[], object], expected: tuple[type[Exception], ...] = USER_ERRORS) -> int:
    """Run a command's ``action`` and return the command's exit code.

    An int that ``action`` returns is the code (anything else, such as a written path, means 0); an ``expected``
    error is one ``error: ...`` line and code 2; :class:`CommandFailed` gives its own code; Ctrl-C gives 130.
    """
    try:
        outcome = action()
    except expected as err:
        report_error(err)
        return EXIT_USER_ERROR
    except CommandFailed as err:
        if str(err):
            report_error(err)
        return err.exit_code
    except SystemExit as exit_request:  # a worker run in this process ends with the code it chose
        code = exit_request.code
        return code if isinstance(code, int) else (EXIT_FAILED if code else EXIT_OK)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return outcome if isinstance(outcome, int) and not isinstance(outcome, bool) else EXIT_OK
