"""The one exception type the CLI turns into a clear message instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, a knob set too high.

    The message says what is wrong and what to do about it. `cli.main` prints it on one line
    (no traceback unless --debug) and exits with `exit_code`.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
