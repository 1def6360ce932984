"""State in a local folder: `.mactl/state.json`, `.mactl/workspaces/NAME/state.json`.

Layout of one workspace folder (the `.mactl/` folder itself for `default`):

    state.json            the state, replaced atomically (temp file, fsync, rename, fsync dir)
    state.json.lock       the lock, created atomically only if absent (link(2), like O_EXCL)
    backups/state.N.json  the last 10 stored versions (hard links to the replaced files)

Every change to those files happens under an flock(2) on the workspace folder, so the
compare-serial-then-rename of a conditional write is atomic against other mactl
processes. A state file that cannot be parsed is never written over.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mactl.state.backend import LockInfo, check_conditional_write, decode_stored, restore_hint
from mactl.state.document import StateDocument, decode_document, encode_document, mask_document
from mactl.state.locking import DEFAULT_HEARTBEAT_S, BackendLocking, HeldLock, lock_from_json, lock_to_json

from mactl.errors import LockError, StateError

STATE_FILE = "state.json"
BACKUPS_KEPT = 10
_BACKUP_NAME = re.compile(r"^state\.(\d+)\.json$")
_TEMP_NAME = re.compile(r"^\.(?:state\.json|lock)\.(\d+)\.[0-9a-f]+\.tmp$")


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


@dataclass(frozen=True)
class _Stored:
    """What a conditional write needs to know about the stored state, without re-parsing it."""

    key: tuple[int, int, int, int]
    serial: int
    lineage: str
    history_len: int


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
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StateError(f"cannot read the state {self.describe()}: {err.strerror or err}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise StateError(f"cannot read the state {self.describe()}: it is not a regular file")
        with os.fdopen(fd, "rb") as file:
            data = file.read()
        doc = self._decode(data)
        self._stored = _Stored(_stat_key(st), doc.serial, doc.lineage, len(doc.history))
        return doc

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
        """The stored serial and lineage, from the cache when the file is the one we last saw."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        if self._stored is not None and self._stored.key == _stat_key(st):
            return self._stored
        self.read()
        return self._stored

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
            data = encode_document(new)
            if stored is not None:
                self._backup_current(stored.serial)
            temp = write_temp(self.folder, STATE_FILE, data)
            os.replace(temp, self.path)
            fsync_folder(self.folder)
            st = os.stat(self.path)
            self._stored = _Stored(_stat_key(st), new.serial, new.lineage, len(new.history))
            self._prune()
        return new

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
                if match and not _pid_alive(int(match.group(1))):
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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
