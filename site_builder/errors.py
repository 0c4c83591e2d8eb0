"""The one exception type for mistakes a user can fix (bad input, missing file, wrong flag).

The CLI prints a UserError as a single line and exits non-zero; anything else is a bug and keeps its
traceback. Messages name the file (and line or field where known) and say what to do.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem in the user's input, reported without a traceback."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "") + ": "
        return where + self.message
