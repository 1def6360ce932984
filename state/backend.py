"""The interface every state backend implements. The engine sees only this.

Writes are conditional: `write(doc)` succeeds only if the stored serial is still
`doc.serial` (what the caller read), stores it as `doc.serial + 1`, and returns the
stored document. A concurrent writer therefore gets `StateConflict` instead of
silently overwriting. Locks are advisory but taken by every command that writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from mactl.errors import StateError
from mactl.state.document import StateDocument


class StateConflict(StateError):
    """The stored state changed since it was read (its serial moved)."""


@dataclass(frozen=True)
class LockInfo:
    id: str
    who: str  # user@host
    pid: int
    operation: str
    created_at: str
    heartbeat_at: str


class Backend(Protocol):
    """A place the state document lives, for one workspace."""

    def read(self) -> StateDocument | None:
        """The stored state, or None if there is none yet. Raises StateError if corrupt."""
        ...

    def write(self, doc: StateDocument) -> StateDocument:
        """Store `doc` as serial `doc.serial + 1` if the stored serial is `doc.serial`."""
        ...

    def lock(self, operation: str, timeout_s: float = 0.0) -> AbstractContextManager[LockInfo]:
        """Take the lock (waiting up to `timeout_s`), heartbeat while held, release on exit."""
        ...

    def lock_info(self) -> LockInfo | None: ...

    def force_unlock(self, lock_id: str) -> None: ...

    def versions(self) -> Iterator[str]:
        """Where earlier versions (backups) can be found, newest first, for error hints."""
        ...
