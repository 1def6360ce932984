"""Taking, refreshing and releasing the state lock, the same way for every backend.

A backend supplies a `LockStore` (create-if-absent, refresh-if-ours, remove-if-id,
read); this module turns it into the `with backend.lock(...)` context: wait up to a
timeout while someone else holds it, then heartbeat from a background thread while the
body runs, and release on exit. A lock is never broken silently: a holder that crashed
stays visible (with its age and last heartbeat, and `staleness` says whether it is provably
gone) until someone runs `mactl force-unlock ID` with its exact ID, or a command asked to
take over a stale lock (`-lock-takeover-stale`) takes it. A live holder is never taken over.

Every write under a held lock first checks that the lock is still ours; if it was
force-unlocked (and maybe taken by another run), the write fails with a lock-lost
message and the listeners registered with `on_lock_lost` are told, so the walk stops.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from mactl.state.backend import LockInfo
from mactl.state.document import utcnow
from mactl.state.identity import current_who

from mactl.errors import LockError

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_S = 30.0
_POLL_S = 0.5


class LockStore(Protocol):
    """Where one workspace's lock lives. Every method is atomic on its own."""

    def try_create(self, info: LockInfo) -> LockInfo | None:
        """Store `info` if there is no lock and return None; otherwise return the holder."""
        ...

    def refresh(self, info: LockInfo) -> bool:
        """Replace our lock with `info` (a newer heartbeat); False if it is no longer ours."""
        ...

    def remove(self, lock_id: str) -> LockInfo:
        """Delete the lock if its ID is `lock_id` and return it; LockError otherwise."""
        ...

    def current(self) -> LockInfo | None: ...

    def describe(self) -> str:
        """Where the lock lives, for messages."""
        ...


def new_lock_info(operation: str, workspace: str, heartbeat_s: float = DEFAULT_HEARTBEAT_S) -> LockInfo:
    now = utcnow()
    pid = os.getpid()
    return LockInfo(
        id=str(uuid.uuid4()),
        who=current_who(),
        pid=pid,
        operation=operation,
        created_at=now,
        heartbeat_at=now,
        workspace=workspace,
        process_start=process_start(pid) or "",
        heartbeat_s=heartbeat_s,
        host=socket.gethostname(),
    )


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """When process `pid` started, as "boot-id:start-tick" (Linux), or None if unknown.

    Two different processes that got the same pid (one after the other) differ here.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None
    return f"{_boot_id()}:{fields[19].decode()}"  # field 22, starttime


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclasses.dataclass(frozen=True)
class Staleness:
    """Whether a lock's holder is provably gone (`stale`), and why, in a few words."""

    stale: bool
    reason: str


def staleness(info: LockInfo, now: datetime | None = None) -> Staleness:
    """Is the holder of `info` gone?

    On this host: gone if its pid no longer exists, or now belongs to a process that
    started at another time than the holder (pid reuse). On another host (where pids say
    nothing): gone if its heartbeat is older than twice its interval, i.e. it missed a
    whole interval. An unreadable lock is never called stale: nobody knows whose it is.
    """
    if info.id.startswith("unreadable-") or not info.heartbeat_at:
        return Staleness(False, "the lock cannot be read; nobody knows whether its holder still runs")
    host = info.host
    if host and host == socket.gethostname() and info.pid > 0:
        if not pid_alive(info.pid):
            return Staleness(True, f"its process (pid {info.pid}) no longer runs on {host}")
        if info.process_start:
            started = process_start(info.pid)
            if started is not None and started != info.process_start:
                return Staleness(True, f"pid {info.pid} on {host} now belongs to another process")
        return Staleness(False, f"its process (pid {info.pid}) is still running on {host}")
    interval = info.heartbeat_s or DEFAULT_HEARTBEAT_S
    age = age_seconds(info.heartbeat_at, now)
    if age is None:
        return Staleness(False, "its heartbeat time cannot be read")
    if age > 2 * interval:
        return Staleness(
            True, f"its last heartbeat was {format_age(age)} ago, and it beats every {format_age(interval)}"
        )
    return Staleness(False, f"it heartbeated {format_age(age)} ago (every {format_age(interval)})")


def lock_to_json(info: LockInfo) -> bytes:
    return orjson.dumps(dataclasses.asdict(info), option=orjson.OPT_INDENT_2)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}


def lock_from_json(data: bytes, source: str) -> LockInfo:
    """Parse a stored lock. An unreadable one still gets a stable ID so it can be force-unlocked."""
    try:
        raw: Any = orjson.loads(data)
        if not isinstance(raw, dict):
            raise TypeError("a lock is a JSON object")
        fields = {f.name: f for f in dataclasses.fields(LockInfo)}
        kept = {k: v for k, v in raw.items() if k in fields}
        for key, value in kept.items():
            # Written by another process (or by hand): a field of the wrong type would only
            # fail later, in the middle of printing who holds the lock.
            wanted = _FIELD_TYPES.get(str(fields[key].type))
            if wanted is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
                raise TypeError(f"lock field {key} has the wrong type")
        return LockInfo(**kept)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        import hashlib

        digest = hashlib.sha256(data).hexdigest()[:12]
        return LockInfo(
            id=f"unreadable-{digest}",
            who="unknown",
            pid=0,
            operation=f"(unreadable lock at {source})",
            created_at="",
            heartbeat_at="",
        )


def age_seconds(timestamp: str, now: datetime | None = None) -> float | None:
    """Seconds since an ISO timestamp from a lock or history entry; None if there is none."""
    if not timestamp:
        return None
    try:
        then = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return None
    if then.tzinfo is None:  # written by hand or another tool: mactl writes UTC
        then = then.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - then).total_seconds()


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def describe_holder(info: LockInfo) -> str:
    """One line naming the holder, so a waiting user knows whom to ask (or that it crashed)."""
    return (
        f"ID {info.id}, held by {info.who} (pid {info.pid}) for {info.operation!r}, "
        f"taken {format_age(age_seconds(info.created_at))} ago, "
        f"last heartbeat {format_age(age_seconds(info.heartbeat_at))} ago"
    )


def lost_message(ours: LockInfo, where: str, now_held_by: LockInfo | None) -> str:
    """The one line a holder says when its lock was taken away."""
    if now_held_by is None or now_held_by.id == ours.id:
        return f"the state lock {ours.id} at {where} was removed while this process held it: stopping"
    return (
        f"the state lock was taken by {now_held_by.who} (pid {now_held_by.pid}, {now_held_by.operation!r}, "
        f"lock {now_held_by.id}) at {now_held_by.created_at}: stopping"
    )


class HeldLock:
    """A lock this process holds, and the thread that keeps its heartbeat fresh.

    If a heartbeat or a write finds the lock is no longer ours (someone force-unlocked
    it, and maybe took it), `lost` is set, every listener is told once, and the backend
    refuses further writes under it.
    """

    def __init__(self, store: LockStore, info: LockInfo, heartbeat_s: float) -> None:
        self.store = store
        self.info = info
        self.lost = False
        self.lost_because = ""
        self.taken_over: tuple[LockInfo, str] | None = None  # the stale lock this one replaced, and why
        self._listeners: list[Callable[[str], None]] = []
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name="mactl-lock-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            fresh = dataclasses.replace(self.info, heartbeat_at=utcnow())
            try:
                still_ours = self.store.refresh(fresh)
            except Exception:  # a network blip must not kill the apply; the next beat retries
                continue
            if not still_ours:
                try:
                    holder = self.store.current()
                except Exception:  # noqa: BLE001 - the message just names nobody then
                    holder = None
                self._lose(lost_message(self.info, self.store.describe(), holder))
                return
            self.info = fresh

    def _lose(self, message: str) -> None:
        with self._mutex:
            if self.lost:
                return
            self.lost, self.lost_because = True, message
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(message)
            except Exception:  # noqa: BLE001, S110 - a listener's failure must not hide the loss
                pass

    def add_listener(self, callback: Callable[[str], None]) -> None:
        with self._mutex:
            lost, message = self.lost, self.lost_because
            if not lost:
                self._listeners.append(callback)
        if lost:
            callback(message)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        """Raise LockError if the lock is no longer ours: checked by the store before every write."""
        holder = self.store.current()  # also once lost: the message names whoever holds it now
        if not self.lost and holder is not None and holder.id == self.info.id:
            return
        message = lost_message(self.info, self.store.describe(), holder)
        self._lose(message)
        raise LockError(
            message,
            hint="someone ran `mactl force-unlock` while this run held the lock; check `mactl lock status` "
            "and `mactl history` before trying again",
        )


@contextmanager
def hold_lock(
    store: LockStore,
    operation: str,
    workspace: str,
    *,
    timeout_s: float = 0.0,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    on_wait: Callable[[LockInfo], None] | None = None,
    on_acquire: Callable[[HeldLock | None], None] = lambda held: None,
    takeover_stale: bool = False,
    on_takeover: Callable[[LockInfo, str], None] | None = None,
    before_release: Callable[[], None] | None = None,
) -> Iterator[LockInfo]:
    """Take the lock (waiting up to `timeout_s` while someone else holds it), heartbeat, release.

    `on_wait` is called once with the holder when we start waiting, so the CLI can say
    who it is waiting for. `on_acquire` lets the backend remember the held lock (and
    forget it, with None, on release). With `takeover_stale`, a holder that `staleness`
    proves gone is removed (by its exact ID, so a lock that changed meanwhile is left
    alone) and the lock taken; `on_takeover(old, why)` runs once the lock is ours.
    `before_release` runs while the lock is still ours, just before it is released (the
    backend folds its journal into the document then); its failure is logged, not raised:
    the journal it leaves is still part of the state.
    """
    info = new_lock_info(operation, workspace, heartbeat_s)
    deadline = time.monotonic() + max(0.0, timeout_s)
    told = False
    taken_over: tuple[LockInfo, str] | None = None
    while True:
        holder = store.try_create(info)
        if holder is None:
            break
        if holder.pid == info.pid and holder.who == info.who:
            raise LockError(
                f"the state lock at {store.describe()} is already held by this process ({holder.operation!r}); "
                "waiting for it would wait forever"
            )
        verdict = staleness(holder)
        if takeover_stale and verdict.stale:
            try:
                store.remove(holder.id)
            except LockError:
                pass  # it changed meanwhile (released, or taken over by someone else): look again
            else:
                taken_over = (holder, verdict.reason)
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            waited = f" after waiting {timeout_s:g}s" if timeout_s else ""
            if verdict.stale:
                raise LockError(
                    f"the state lock at {store.describe()} is held{waited} by a run that is gone ({verdict.reason}): "
                    f"{describe_holder(holder)}",
                    hint=f"take it over with -lock-takeover-stale, or `mactl force-unlock {holder.id}`",
                )
            live = f" ({verdict.reason})" if takeover_stale else ""
            raise LockError(
                f"the state lock at {store.describe()} is held{waited}{live}: {describe_holder(holder)}",
                hint="wait longer with -lock-timeout (e.g. -lock-timeout 5m); if the holder crashed, "
                f"`mactl force-unlock {holder.id}`",
            )
        if not told and on_wait is not None:
            on_wait(holder)
            told = True
        time.sleep(min(_POLL_S, remaining))
    held = HeldLock(store, info, heartbeat_s)
    held.taken_over = taken_over
    on_acquire(held)
    body_failed = True
    try:
        if taken_over is not None and on_takeover is not None:
            on_takeover(*taken_over)
        yield info
        body_failed = False
    finally:
        if before_release is not None and not held.lost:
            try:
                before_release()
            except Exception as err:  # noqa: BLE001 - the state is whole either way; say so and release
                log.warning("could not fold the state journal in before releasing the lock: %s", err)
        held.stop()
        on_acquire(None)
        if not held.lost:
            try:
                store.remove(info.id)
            except LockError:
                pass  # force-unlocked meanwhile: nothing of ours left to release
            except Exception as err:
                if not body_failed:  # never hide the body's own error behind this one
                    raise LockError(
                        f"could not release the state lock {info.id} at {store.describe()}: {err}",
                        hint=f"check `mactl lock status`; `mactl force-unlock {info.id}` if it is still there",
                    ) from None


class BackendLocking:
    """The lock methods every backend shares; a backend supplies `_lock_store`,
    `workspace` and `heartbeat_s`, and sets `_held = None`.

    One process holds at most one lock per backend: taking it twice would deadlock on
    the backend's own lock, so it is refused with a clear error instead.
    """

    _lock_store: LockStore
    _held: HeldLock | None
    workspace: str
    heartbeat_s: float

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
        if self._held is not None:
            raise LockError(
                f"this process already holds the state lock {self._held.info.id} for {self._held.info.operation!r}"
            )

        def remember(held: HeldLock | None) -> None:
            self._held = held

        return hold_lock(
            self._lock_store,
            operation,
            self.workspace,
            timeout_s=timeout_s,
            heartbeat_s=heartbeat_s or self.heartbeat_s,
            on_wait=on_wait,
            on_acquire=remember,
            takeover_stale=takeover_stale,
            on_takeover=on_takeover,
            before_release=self.compact,
        )

    def compact(self) -> None:
        """Fold the journal into the document; backends with a journal override this."""

    def on_lock_lost(self, callback: Callable[[str], None]) -> None:
        if self._held is not None:
            self._held.add_listener(callback)

    def lock_info(self) -> LockInfo | None:
        return self._lock_store.current()

    def force_unlock(self, lock_id: str) -> LockInfo:
        return self._lock_store.remove(lock_id)
