"""The exceptions mactl raises on purpose.

Every error a user can cause derives from `MactlError`; the CLI prints its message (and
hint) on one or two lines and exits non-zero, never with a traceback. Anything else that
escapes is a bug.
"""

from __future__ import annotations


class MactlError(Exception):
    """An error with a message meant for the user, and an optional hint on what to do."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(MactlError):
    """The config (or a variable, or a command-line argument) is wrong. Names the path."""


class StateError(MactlError):
    """The state could not be read or written safely."""


class LockError(StateError):
    """The state lock is held by someone else, or could not be taken or released."""


class PlanError(MactlError):
    """A plan cannot be made or applied as asked (stale plan file, prevented rollback…)."""


class ProviderError(MactlError):
    """A provider failed to do its stage's work."""


class ProviderNotAvailable(ProviderError):
    """The stage type has input schemas for planning but no apply/rollback yet."""
