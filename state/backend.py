"""The interface every state backend implements. The engine sees only this.

Writes are conditional: `write(doc)` succeeds only if the stored serial is still
`doc.serial` (what the caller read), stores it as `doc.serial + 1`, and returns the
stored document. A concurrent writer therefore gets `StateConflict` instead of
silently overwriting. Locks are advisory but taken by every command that writes.

The stored state is a document plus a journal of the transitions appended since it was
written (`mactl.state.journal`): `append` costs the same at 12 or 12,000 stages, and
`read` always returns the two merged, so no reader ever sees them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mactl.state.document import StateDocument, decode_document
from mactl.state.journal import Transition

from mactl.errors import StateError


class StateConflict(StateError):
    """The stored state changed since it was read (its serial moved)."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds a workspace's lock, since when, and when it last proved it was alive."""

    id: str
    who: str  # user@host
    pid: int
    operation: str
    created_at: str
    heartbeat_at: str
    workspace: str = "default"
    # When the holder's process started (Linux: boot id and start tick), so that a pid
    # reused by another process after a crash is not mistaken for the holder; "" if unknown.
    process_start: str = ""
    host: str = ""  # the holder's real host name (`who` may be overridden by MACTL_WHO); "" if not recorded
    heartbeat_s: float = 0.0  # the holder's heartbeat interval; 0 when not recorded


class Backend(Protocol):
    """A place the state document lives, for one workspace."""

    workspace: str
    workdir: Path  # a local folder for this workspace's working files (plans, checkpoints' scratch)

    def describe(self) -> str:
        """Where the state lives (`.mactl/state.json`, `s3://bucket/key`), for messages."""
        ...

    def read(self) -> StateDocument | None:
        """The stored state (the document with its journal folded in), or None if there is
        none yet. Raises StateError if corrupt; a journal's torn last line is not damage."""
        ...

    def write(self, doc: StateDocument, *, replace: bool = False) -> StateDocument:
        """Store `doc` as serial `doc.serial + 1` if the stored serial is `doc.serial`.

        Secret-looking values are masked before storing. The history is append-only: a
        document with fewer entries, or of another lineage, is refused unless `replace`
        (only `state push --force` sets it). The journal is folded into what is stored.
        """
        ...

    def append(self, lineage: str, serial: int, transitions: Sequence[Transition]) -> int:
        """Store `transitions` as serial `serial + 1` if the stored state is `lineage` at
        `serial` (StateConflict otherwise); returns the new serial.

        Durable before it returns, masked like `write`, refused (LockError) once the held
        lock was lost. Its I/O does not depend on the size of the state: it appends to the
        journal, compacting it into the document when the journal outgrows the document.
        """
        ...

    def compact(self) -> None:
        """Fold the journal into the document, at the same serial; a no-op without one.

        Idempotent, and safe to kill at any point: the journal is removed only after the
        document holding its entries is stored. Run at lock release by every backend.
        """
        ...

    def lock(
        self,
        operation: str,
        timeout_s: float = 0.0,
        *,
        heartbeat_s: float | None = None,
        on_wait: Callable[[LockInfo], None] | None = None,
        takeover_stale: bool = False,
        on_takeover: Callable[[LockInfo, str], None] | None = None,
    ) -> AbstractContextManager[LockInfo]:
        """Take the lock (waiting up to `timeout_s`), heartbeat while held, release on exit.

        With `takeover_stale`, a lock whose holder is provably gone (`locking.staleness`)
        is removed and taken; `on_takeover(old, why)` is then called once the lock is ours
        (the CLI records it in the history). A live holder is never taken over.
        """
        ...

    def on_lock_lost(self, callback: Callable[[str], None]) -> None:
        """Call `callback(message)` (once, from any thread) if the held lock is found taken
        away, by the heartbeat or by a write; writes under it fail from then on."""
        ...

    def lock_info(self) -> LockInfo | None: ...

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove the lock if its ID is exactly `lock_id`; returns what was removed."""
        ...

    def versions(self) -> Iterator[str]:
        """Where earlier versions (backups) can be found, newest first, for error hints."""
        ...

    def read_version(self, version: str) -> StateDocument:
        """One of the backups `versions()` names."""
        ...

    def delete_all(self) -> None:
        """Remove this workspace's state, backups and lock (`workspace delete`)."""
        ...


def check_conditional_write(stored: tuple[int, str, int] | None, doc: StateDocument, where: str, replace: bool) -> None:
    """Refuse a write whose document was not read from what is stored now.

    `stored` is (serial, lineage, number of history entries) or None if nothing is
    stored. Shared by every backend so they refuse exactly the same things.
    """
    if stored is None:
        if doc.serial != 0:
            raise StateConflict(
                f"state at {where} no longer exists (this document was read at serial {doc.serial})",
                hint="someone deleted the state or its workspace; check `mactl workspace list`",
            )
        return
    serial, lineage, history_len = stored
    if serial != doc.serial:
        raise StateConflict(
            f"state at {where} moved to serial {serial} since it was read (at serial {doc.serial})",
            hint="another run wrote the state; read it again and retry",
        )
    if replace:
        return
    if lineage != doc.lineage:
        raise StateConflict(f"state at {where} has lineage {lineage}, not {doc.lineage}")
    if len(doc.history) < history_len:
        raise StateError(
            f"refusing to write state at {where}: the history is append-only "
            f"({len(doc.history)} entries, {history_len} stored)"
        )


def decode_stored(data: bytes, where: str, kind: str, restore_hint: Callable[[], str]) -> StateDocument:
    """`decode_document` for a backend's live state, saying that the damaged `kind`
    ("file", "object") was left alone and how to restore a backup.

    Shared by every backend so a corrupt state is reported the same way everywhere;
    `restore_hint` is called only on damage, since it lists the backups.
    """
    try:
        return decode_document(data, where)
    except StateError as err:
        raise StateError(
            f"{err.message}. The {kind} has not been changed, and mactl will not write over it.",
            hint=restore_hint(),
        ) from None


def restore_hint(versions: Iterable[str], copy_command: str, where: str, no_backups: str) -> str:
    """The hint for a corrupt state: `copy_command` the newest of `versions` (newest
    first, as `Backend.versions()` yields them) over `where`, or `no_backups` if none.

    Shared by every backend so the advice reads the same; only the copy command and
    the no-backups advice depend on where the state lives.
    """
    newest = list(versions)[:3]
    if not newest:
        return no_backups
    return f"restore the newest backup: {copy_command} {newest[0]} {where} (backups, newest first: {', '.join(newest)})"
