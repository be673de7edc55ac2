"""Errors a user can fix. Each names the file, the field, the line where known, and what is allowed.

Everything the tool reports to a user goes through `UserError`; anything else escaping is a bug.
"""
from __future__ import annotations

import os


class UserError(Exception):
    """A mistake in the user's input or environment, reported as one clear line, never a traceback."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None, allowed: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.field = field
        self.line = line
        self.allowed = allowed

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = _shown_path(str(self.file)) + (f":{self.line}" if self.line else "") + ": "
        field = f"field '{self.field}': " if self.field else ""
        allowed = f" (allowed: {self.allowed})" if self.allowed else ""
        return f"{where}{field}{self.message}{allowed}"


def _shown_path(path: str) -> str:
    """Relative to the current folder when inside it: what the user would type."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


class StageFailed(Exception):
    """A stage's side effect failed in the world (build error, stack failure). Message is user-facing."""


class ServiceUnavailable(UserError):
    """The Docker engine, registry or AWS endpoint a stage needs does not answer."""
