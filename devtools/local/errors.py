"""The one error the local harness raises: it says what failed and what to try.

Its own type, not one of mactl's: devtools does not import mactl (see `devtools`).
"""

from __future__ import annotations


class LocalServiceError(Exception):
    """A local service could not be fetched, started, reached or stopped."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"
