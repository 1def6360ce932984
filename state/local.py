"""State in a local folder: `.mactl/state.json`, `.mactl/workspaces/NAME/state.json`.

Layout of one workspace folder (the `.mactl/` folder itself for `default`):

    state.json            the state, replaced atomically (temp file, fsync, rename, fsync dir)
    state.json.journal    transitions since state.json was written (`mactl.state.journal`):
                          a header line, then one line per `append`, fsynced before it returns
    state.json.lock       the lock, created atomically only if absent (link(2), like O_EXCL)
    backups/state.N.json  the last 10 stored versions (hard links to the replaced files)

Every change to those files happens under an flock(2) on the workspace folder, so the
compare-serial-then-rename of a conditional write is atomic against other mactl
processes. A state file that cannot be parsed is never written over.

An `append` writes one line to the journal: its cost does not grow with the state. The
journal is folded into `state.json` by `compact` (the document is written first, then
the journal removed: a kill in between leaves a journal whose entries the document
already holds, which readers skip) and by every full `write`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mactl.state.backend import LockInfo, StateConflict, check_conditional_write, decode_stored, restore_hint
from mactl.state.document import StateDocument, decode_document, encode_document, mask_document
from mactl.state.journal import (
    Transition,
    decode_journal,
    encode_entry,
    encode_header,
    fold,
    mask_transition,
    should_compact,
)
from mactl.state.locking import (
    DEFAULT_HEARTBEAT_S,
    BackendLocking,
    HeldLock,
    lock_from_json,
    lock_to_json,
    pid_alive,
)

from mactl.errors import LockError, StateError

STATE_FILE = "state.json"
JOURNAL_FILE = "state.json.journal"
BACKUPS_KEPT = 10
_BACKUP_NAME = re.compile(r"^state\.(\d+)\.json$")
_TEMP_NAME = re.compile(r"^\.(?:state\.json|state\.json\.journal|lock)\.(\d+)\.[0-9a-f]+\.tmp$")


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it is below it, for short messages."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on `folder`: serialises mactl's changes to the files in it.

    The kernel drops it when the process dies, so a kill -9 never leaves it behind.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(folder: Path, prefix: str, data: bytes) -> Path:
    """Write `data` to a new temp file in `folder` and fsync it; the caller renames or links it."""
    temp = folder / f".{prefix}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


_StatKey = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Stored:
    """What a conditional write or append needs to know about the stored state (document
    and journal merged), without re-parsing it: valid while both files' stat keys match."""

    key: _StatKey | None  # state.json's, None if absent
    journal_key: _StatKey | None  # state.json.journal's, None if absent
    serial: int
    lineage: str
    history_len: int
    doc_size: int = 0
    journal_end: int = 0  # the journal's valid bytes (a torn last line lies beyond)
    journal_live: bool = False  # the journal holds entries after the document's serial
    doc_serial: int = 0  # state.json's own serial (below `serial` while the journal is live)


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


class LocalLockStore:
    """The lock of one local workspace: `state.json.lock` beside the state."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / f"{STATE_FILE}.lock"

    def describe(self) -> str:
        return display_path(self.path)

    def _read(self) -> LockInfo | None:
        try:
            if not self.path.is_file() and self.path.exists():
                raise StateError(f"cannot read the lock {self.describe()}: it is not a regular file")
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StateError(f"cannot read the lock {self.describe()}: {err.strerror or err}") from None
        return lock_from_json(data, self.describe())

    def current(self) -> LockInfo | None:
        return self._read()

    def try_create(self, info: LockInfo) -> LockInfo | None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with folder_lock(self.folder):
            holder = self._read()
            if holder is not None:
                return holder
            temp = write_temp(self.folder, "lock", lock_to_json(info))
            try:
                os.link(temp, self.path)  # fails with EEXIST if a lock exists: the O_EXCL guarantee
            except FileExistsError:
                return self._read() or info
            finally:
                temp.unlink(missing_ok=True)
            fsync_folder(self.folder)
        return None

    def refresh(self, info: LockInfo) -> bool:
        with folder_lock(self.folder):
            holder = self._read()
            if holder is None or holder.id != info.id:
                return False
            temp = write_temp(self.folder, "lock", lock_to_json(info))
            os.replace(temp, self.path)
        return True

    def remove(self, lock_id: str) -> LockInfo:
        if not self.folder.is_dir():
            raise LockError(f"there is no state lock at {self.describe()}")
        with folder_lock(self.folder):
            holder = self._read()
            if holder is None:
                raise LockError(f"there is no state lock at {self.describe()}")
            if holder.id != lock_id:
                raise LockError(
                    f"the state lock at {self.describe()} has ID {holder.id}, not {lock_id}",
                    hint="force-unlock needs the exact ID shown by `mactl lock status`",
                )
            self.path.unlink()
            fsync_folder(self.folder)
        return holder


class LocalBackend(BackendLocking):
    """One workspace's state in a local folder. See the module docstring for the layout."""

    def __init__(self, folder: Path, workspace: str, workdir: Path, heartbeat_s: float = DEFAULT_HEARTBEAT_S) -> None:
        self.folder = folder
        self.workspace = workspace
        self._workdir = workdir
        self.path = folder / STATE_FILE
        self.journal = folder / JOURNAL_FILE
        self.backups = folder / "backups"
        self.heartbeat_s = heartbeat_s
        self._lock_store = LocalLockStore(folder)
        self._held: HeldLock | None = None
        self._stored: _Stored | None = None

    @property
    def workdir(self) -> Path:
        self._workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._workdir

    @property
    def workdir_path(self) -> Path:
        """The working folder's path, without creating it (a plan only reads from it)."""
        return self._workdir

    def describe(self) -> str:
        return display_path(self.path)

    # -- reading -------------------------------------------------------------------

    def read(self) -> StateDocument | None:
        """The document with the journal's entries folded in.

        The journal is read before the document: a compaction in between only moves the
        document forward, so the entries it already holds are skipped, never lost.
        """
        journal_data, journal_st = self._read_file(self.journal, "state journal")
        data, st = self._read_file(self.path, "state")
        doc = self._decode(data) if st is not None else None
        entries = decode_journal(journal_data, display_path(self.journal)) if journal_st is not None else None
        merged = doc
        if entries is not None:
            merged = fold(doc, entries.header, entries.entries, display_path(self.journal))
        doc_serial = doc.serial if doc is not None else 0
        if merged is None:
            self._stored = _Stored(None, _stat_key(journal_st) if journal_st else None, 0, "", 0)
            return None
        self._stored = _Stored(
            _stat_key(st) if st is not None else None,
            _stat_key(journal_st) if journal_st is not None else None,
            merged.serial,
            merged.lineage,
            len(merged.history),
            doc_size=st.st_size if st is not None else 0,
            journal_end=entries.end if entries is not None else 0,
            journal_live=merged.serial > doc_serial,
            doc_serial=doc_serial,
        )
        return merged

    def _read_file(self, path: Path, what: str) -> tuple[bytes, os.stat_result | None]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return b"", None
        except OSError as err:
            raise StateError(f"cannot read the {what} {display_path(path)}: {err.strerror or err}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise StateError(f"cannot read the {what} {display_path(path)}: it is not a regular file")
        with os.fdopen(fd, "rb") as file:
            return file.read(), st

    def _decode(self, data: bytes) -> StateDocument:
        return decode_stored(data, self.describe(), "file", self._restore_hint)

    def _restore_hint(self) -> str:
        return restore_hint(
            self.versions(),
            "cp",
            self.describe(),
            f"no backups exist in {display_path(self.backups)}; fix {self.describe()} by hand or move it away",
        )

    def _stored_now(self) -> _Stored | None:
        """The stored serial and lineage (journal included), from the cache when both files
        are the ones we last saw; None if nothing is stored."""
        st = _stat_or_none(self.path)
        journal_st = _stat_or_none(self.journal)
        key = _stat_key(st) if st is not None else None
        journal_key = _stat_key(journal_st) if journal_st is not None else None
        cached = self._stored
        if cached is None or cached.key != key or cached.journal_key != journal_key:
            self.read()
            cached = self._stored
        if cached is None or (cached.key is None and not cached.journal_live):
            return None
        return cached

    # -- writing -------------------------------------------------------------------

    def write(self, doc: StateDocument, *, replace: bool = False) -> StateDocument:
        masked, _ = mask_document(doc)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with folder_lock(self.folder):
            if self._held is not None:
                self._held.check()  # under the folder lock: a force-unlock cannot slip in before the write
            stored = self._stored_now()
            seen = None if stored is None else (stored.serial, stored.lineage, stored.history_len)
            check_conditional_write(seen, doc, self.describe(), replace)
            new = masked.model_copy(update={"serial": doc.serial + 1})
            self._replace_document(new, stored)
        return new

    def _replace_document(self, new: StateDocument, stored: _Stored | None) -> None:
        """Store `new` as state.json (keeping the old one as a backup), then drop the journal
        it supersedes. Called under the folder lock."""
        data = encode_document(new)
        if stored is not None and stored.key is not None:
            self._backup_current(stored.doc_serial)
        temp = write_temp(self.folder, STATE_FILE, data)
        os.replace(temp, self.path)
        fsync_folder(self.folder)
        if stored is not None and stored.journal_key is not None:
            self.journal.unlink(missing_ok=True)  # a kill before this leaves entries the document holds: skipped
            fsync_folder(self.folder)
        st = os.stat(self.path)
        self._stored = _Stored(
            _stat_key(st), None, new.serial, new.lineage, len(new.history), doc_size=st.st_size, doc_serial=new.serial
        )
        self._prune()

    # -- the journal ---------------------------------------------------------------

    def append(self, lineage: str, serial: int, transitions: Sequence[Transition]) -> int:
        if not transitions:
            return serial
        lock_id = self._held.info.id if self._held is not None else ""
        entry = encode_entry(serial + 1, lock_id, [mask_transition(t) for t in transitions])
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with folder_lock(self.folder):
            if self._held is not None:
                self._held.check()  # under the folder lock: a writer that lost the lock cannot append
            stored = self._stored_now()
            stored_serial = stored.serial if stored is not None else 0
            if stored_serial != serial or (stored is not None and stored.lineage != lineage):
                raise StateConflict(
                    f"state at {self.describe()} moved to serial {stored_serial} since it was read (at serial {serial})",
                    hint="another run wrote the state; read it again and retry",
                )
            if stored is not None and stored.journal_live:
                self._append_line(entry, stored)
            else:  # no journal yet, or one the document already holds: start a new one
                temp = write_temp(self.folder, JOURNAL_FILE, encode_header(lineage, serial) + entry)
                os.replace(temp, self.journal)
                fsync_folder(self.folder)
            journal_st = os.stat(self.journal)
            self._stored = _Stored(
                stored.key if stored is not None else None,
                _stat_key(journal_st),
                serial + 1,
                lineage,
                (stored.history_len if stored is not None else 0) + sum(t.history is not None for t in transitions),
                doc_size=stored.doc_size if stored is not None else 0,
                journal_end=journal_st.st_size,
                journal_live=True,
                doc_serial=stored.doc_serial if stored is not None else 0,
            )
            if should_compact(journal_st.st_size, self._stored.doc_size):
                self._compact_locked()
        return serial + 1

    def _append_line(self, entry: bytes, stored: _Stored) -> None:
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
        try:
            if os.fstat(fd).st_size > stored.journal_end:
                # A last line cut short by a writer that died: readers ignore it, and it
                # must not end up in the middle of the journal, so cut it off first.
                os.ftruncate(fd, stored.journal_end)
            view = memoryview(entry)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def compact(self) -> None:
        if not self.folder.is_dir():
            return
        with folder_lock(self.folder):
            if self._held is not None:
                self._held.check()
            self._compact_locked()

    def _compact_locked(self) -> None:
        merged = self.read()
        stored = self._stored
        if stored is None or stored.journal_key is None:
            return
        if merged is None or not stored.journal_live:
            self.journal.unlink(missing_ok=True)  # nothing in it the document does not hold
            fsync_folder(self.folder)
            self._stored = dataclasses.replace(stored, journal_key=None, journal_end=0)
            return
        masked, _ = mask_document(merged)
        self._replace_document(masked, stored)  # same serial: the state did not change, only where it is kept

    def _backup_current(self, serial: int) -> None:
        """Keep the file about to be replaced as `backups/state.N.json` (a hard link: no copy)."""
        self.backups.mkdir(mode=0o700, exist_ok=True)
        target = self.backups / f"state.{serial}.json"
        temp = self.backups / f".state.json.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        os.link(self.path, temp)
        os.replace(temp, target)

    def _prune(self) -> None:
        """Drop backups beyond the newest 10, and temp files left by writers that died."""
        for old in list(self._backup_paths())[BACKUPS_KEPT:]:
            old.unlink(missing_ok=True)
        for folder in (self.folder, self.backups):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                match = _TEMP_NAME.match(entry.name)
                if match and not pid_alive(int(match.group(1))):
                    entry.unlink(missing_ok=True)

    def _backup_paths(self) -> Iterator[Path]:
        if not self.backups.is_dir():
            return iter(())
        found = []
        for entry in self.backups.iterdir():
            match = _BACKUP_NAME.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
        return (path for _, path in sorted(found, reverse=True))

    def versions(self) -> Iterator[str]:
        return (display_path(p) for p in self._backup_paths())

    def read_version(self, version: str) -> StateDocument:
        path = Path(version)
        if not path.is_absolute():
            path = Path.cwd() / path
        return decode_document(path.read_bytes(), display_path(path))

    def delete_all(self) -> None:
        import shutil

        if self.workspace == "default":
            raise StateError("the default workspace cannot be deleted")
        shutil.rmtree(self.folder, ignore_errors=False)
