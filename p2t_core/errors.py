"""User-facing errors: each prints as one line and maps to an exit code; none is a traceback."""

from __future__ import annotations


class P2TError(Exception):
    """Base of the errors the CLI reports cleanly."""

    exit_code = 2


class SourceError(P2TError):
    """Input the compiler cannot take, located in the user's file: `file.py:LINE:COL: message`."""

    def __init__(self, message: str, *, path: str = "<input>", line: int = 1, col: int = 1):
        super().__init__(message)
        self.message, self.path, self.line, self.col = message, path, line, col

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class UnsupportedError(SourceError):
    """A construct outside the input language: `unsupported <what>; supported: <hint>`."""

    def __init__(self, what: str, hint: str, **where):
        super().__init__(f"unsupported {what}; supported: {hint}", **where)
        self.what, self.hint = what, hint


class ShapeError(SourceError):
    """Shapes that cannot agree, e.g. `(M, 3) + (M, 4)`."""


class VerificationFailed(P2TError):
    """A generated or candidate module did not match its reference."""

    exit_code = 1
