"""The embedded capture log: append-only segmented files, one partition per proxy.

Layout under the log's `path`:

    partitions/<producer>/<base offset, 20 digits>.seg   frames, oldest segment first
    partitions/<producer>/.lock                           held (flock) by the one writer
    consumers/<group>.json                                committed next-offsets

A frame is `length u32 | crc32 u32 | offset u64 | time f64 | key length u16 | key |
payload`, big-endian; the CRC covers everything after itself. A writer that dies mid-
frame leaves a torn tail: the next writer to open the partition scans the last segment
and truncates at the first frame that is short or fails its CRC, so no reader ever sees
half a record. Readers never truncate; a short frame at the end simply is "not yet".

Durability (`fsync`): `always` fsyncs a batch before any of its appends is acknowledged
(group commit: concurrent appends share one fsync); `interval` fsyncs at most once a
second in the background; `never` leaves it to the OS. Appends are `os.write` calls on
an O_APPEND descriptor, so a reader in another process sees them at once.
"""

from __future__ import annotations

import fcntl
import os
import queue
import re
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson

from mactl.capture.log import LogEntry, Offsets
from mactl.errors import ConfigError, ProviderError

_HEAD = struct.Struct(">IIQdH")  # length, crc, offset, time, key length
_SEGMENT = re.compile(r"^(\d{20})\.seg$")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_INTERVAL_S = 1.0


def _root(cfg: dict[str, Any]) -> Path:
    return Path(cfg.get("path") or ".mactl/capture").expanduser().resolve()


def _partitions_dir(cfg: dict[str, Any]) -> Path:
    return _root(cfg) / "partitions"


def partition_name(producer_id: str) -> str:
    return _SAFE.sub("_", producer_id) or "p"


def init_log(cfg: dict[str, Any]) -> None:
    root = _root(cfg)
    (root / "partitions").mkdir(mode=0o700, parents=True, exist_ok=True)
    (root / "consumers").mkdir(mode=0o700, parents=True, exist_ok=True)


def delete_log(cfg: dict[str, Any]) -> bool:
    root = _root(cfg)
    if not (root / "partitions").is_dir():
        return False
    shutil.rmtree(root)
    return True


def describe(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "file",
        "path": str(_root(cfg)),
        "segmentBytes": int(cfg.get("segmentBytes") or 64 * 1024 * 1024),
        "fsync": cfg.get("fsync", "interval"),
    }


def _segments(part_dir: Path) -> list[tuple[int, Path]]:
    found = []
    try:
        names = os.listdir(part_dir)
    except FileNotFoundError:
        return []
    for name in names:
        if m := _SEGMENT.match(name):
            found.append((int(m.group(1)), part_dir / name))
    return sorted(found)


def _segment_path(part_dir: Path, base: int) -> Path:
    return part_dir / f"{base:020d}.seg"


def _frame(offset: int, ts: float, key: bytes, payload: bytes) -> bytes:
    body = struct.pack(">QdH", offset, ts, len(key)) + key + payload
    crc = zlib.crc32(body)
    return struct.pack(">II", len(key) + len(payload), crc) + body


def _scan_valid_end(path: Path, base: int) -> tuple[int, int]:
    """(bytes of whole valid frames, next offset) for one segment; stops at a torn tail."""
    pos = 0
    next_offset = base
    with path.open("rb") as fh:
        data_size = os.fstat(fh.fileno()).st_size
        while pos + _HEAD.size <= data_size:
            fh.seek(pos)
            head = fh.read(_HEAD.size)
            length, crc, offset, _ts, klen = _HEAD.unpack(head)
            end = pos + _HEAD.size + length
            if end > data_size or klen > length:
                break
            fh.seek(pos + 8)
            if zlib.crc32(fh.read(end - pos - 8)) != crc:
                break
            next_offset = offset + 1
            pos = end
    return pos, next_offset


def end_offsets(cfg: dict[str, Any]) -> Offsets:
    """Next offset per partition, from the tail of each partition's last segment."""
    result: Offsets = {}
    pdir = _partitions_dir(cfg)
    if not pdir.is_dir():
        return result
    for name in sorted(os.listdir(pdir)):
        segs = _segments(pdir / name)
        if not segs:
            result[name] = 0
            continue
        base, path = segs[-1]
        result[name] = _scan_valid_end(path, base)[1]
    return result


class FileLogWriter:
    """The single writer of one partition.

    With `fsync: always`, `submit` hands the record to a background thread that writes a
    batch, fsyncs once for all of it (group commit), then resolves the futures, so the
    proxy's event loop never waits on the disk. With `interval` or `never` there is no
    disk wait to hide: `append_nowait` writes the frame on the caller's thread (one
    `os.write` into the page cache, a few microseconds) and the thread only fsyncs in the
    background. That saves two thread hand-offs per captured request.
    """

    def __init__(self, cfg: dict[str, Any], producer_id: str) -> None:
        self.partition = partition_name(producer_id)
        self._dir = _partitions_dir(cfg) / self.partition
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._segment_bytes = int(cfg.get("segmentBytes") or 64 * 1024 * 1024)
        self._fsync = cfg.get("fsync", "interval")
        self._lock_fd = os.open(self._dir / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ProviderError(
                f"capture log partition {self._dir} already has a writer (another proxy with the same id?)"
            ) from None
        self._fd, self._base, self._size, self.next_offset = self._recover()
        self._queue: queue.SimpleQueue[tuple[bytes, bytes, Future[tuple[str, int]]] | None] = queue.SimpleQueue()
        self._dirty = False
        self._last_sync = time.monotonic()
        self._io_lock = threading.Lock()  # frames and segment rolls, from either thread
        self._thread = threading.Thread(target=self._run, name=f"filelog-{self.partition}", daemon=True)
        self._thread.start()

    def _recover(self) -> tuple[int, int, int, int]:
        segs = _segments(self._dir)
        if not segs:
            base = 0
            path = _segment_path(self._dir, 0)
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)  # captured requests
            return fd, base, 0, 0
        base, path = segs[-1]
        valid, next_offset = _scan_valid_end(path, base)
        if valid != path.stat().st_size:
            with path.open("r+b") as fh:  # torn tail from a crash: cut it off
                fh.truncate(valid)
                os.fsync(fh.fileno())
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return fd, base, valid, next_offset

    def submit(self, key: str, payload: bytes) -> Future[tuple[str, int]]:
        fut: Future[tuple[str, int]] = Future()
        self._queue.put((key.encode(), payload, fut))
        return fut

    def append(self, key: str, payload: bytes) -> tuple[str, int]:
        stored = self.append_nowait(key, payload)
        return stored if stored is not None else self.submit(key, payload).result()

    def append_nowait(self, key: str, payload: bytes) -> tuple[str, int] | None:
        """Store the record now and return (partition, offset), or None when the fsync
        policy means waiting for the disk (then use `submit`)."""
        if self._fsync == "always":
            return None
        try:
            return self.partition, self._write_frame(key.encode(), payload)
        except OSError as exc:
            raise ProviderError(f"capture log write failed: {exc}") from None

    def _write_frame(self, key: bytes, payload: bytes) -> int:
        with self._io_lock:
            if self._size >= self._segment_bytes:
                self._roll()
            offset = self.next_offset
            data = _frame(offset, time.time(), key, payload)
            os.write(self._fd, data)
            self._size += len(data)
            self.next_offset = offset + 1
            self._dirty = True
            return offset

    def _roll(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._base = self.next_offset
        self._size = 0
        path = _segment_path(self._dir, self._base)
        self._fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)  # captured requests
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_INTERVAL_S)
            except queue.Empty:
                self._maybe_sync(force=False)
                continue
            batch = [item]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(b is None for b in batch)
            done: list[tuple[Future[tuple[str, int]], int]] = []
            for entry in batch:
                if entry is None:
                    continue
                key, payload, fut = entry
                try:
                    done.append((fut, self._write_frame(key, payload)))
                except OSError as exc:
                    fut.set_exception(ProviderError(f"capture log write failed: {exc}"))
            try:
                if self._fsync == "always":
                    self._sync()
                else:
                    self._maybe_sync(force=False)
            except OSError as exc:
                for fut, _ in done:
                    fut.set_exception(ProviderError(f"capture log fsync failed: {exc}"))
                done = []
            for fut, offset in done:
                fut.set_result((self.partition, offset))
            if stop:
                self._maybe_sync(force=True)
                return

    def _sync(self) -> None:
        """fsync outside the lock, so appends on the event loop never wait for the disk;
        a dup of the descriptor stays valid even if a roll closes the original meanwhile."""
        with self._io_lock:
            fd = os.dup(self._fd) if self._dirty else -1
            self._dirty = False
        if fd >= 0:
            try:
                os.fsync(fd)
            except OSError:
                self._dirty = True
                raise
            finally:
                os.close(fd)
        self._last_sync = time.monotonic()

    def _maybe_sync(self, *, force: bool) -> None:
        if self._fsync == "never" and not force:
            return
        if force or time.monotonic() - self._last_sync >= _INTERVAL_S:
            self._sync()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        os.close(self._fd)
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)


def open_writer(cfg: dict[str, Any], producer_id: str) -> FileLogWriter:
    init_log(cfg)
    return FileLogWriter(cfg, producer_id)


class _Cursor:
    """Read position inside one partition: which segment, where in it, which offset next."""

    def __init__(self, part_dir: Path, start: int) -> None:
        self.dir = part_dir
        self.next_offset = start
        self.fh: Any = None
        self.base = -1
        self.pos = 0
        self._open_for(start)

    def _open_for(self, offset: int) -> None:
        segs = _segments(self.dir)
        chosen = None
        for base, path in segs:
            if base <= offset:
                chosen = (base, path)
        if chosen is None:
            if segs:  # offset is before the first retained segment: start there
                chosen = segs[0]
            else:
                return
        if self.fh is not None:
            self.fh.close()
        self.base, path = chosen
        self.fh = path.open("rb")
        self.pos = 0

    def read(self, limit: int) -> list[LogEntry]:
        if self.fh is None:
            self._open_for(self.next_offset)
            if self.fh is None:
                return []
        out: list[LogEntry] = []
        name = self.dir.name
        while len(out) < limit:
            self.fh.seek(self.pos)
            head = self.fh.read(_HEAD.size)
            if len(head) < _HEAD.size:
                if self._advance_segment():
                    continue
                break
            length, crc, offset, ts, klen = _HEAD.unpack(head)
            rest = self.fh.read(length)
            if len(rest) < length:
                break  # being written right now (or torn): try again later
            body = head[8:] + rest
            end = self.pos + _HEAD.size + length
            corrupt = zlib.crc32(body) != crc or klen > length
            if corrupt:
                size = os.fstat(self.fh.fileno()).st_size
                if end >= size:
                    break  # a tail still being written
            self.pos = end
            if offset < self.next_offset and not corrupt:
                continue  # before the seek point
            entry_offset = self.next_offset if corrupt else offset
            key = b"" if corrupt else rest[:klen]
            out.append(LogEntry(name, entry_offset, key.decode(errors="replace"), rest[klen:], ts, corrupt))
            self.next_offset = entry_offset + 1
        return out

    def _advance_segment(self) -> bool:
        nxt = _segment_path(self.dir, self.next_offset)
        if nxt.exists() and self.base != self.next_offset:
            self.fh.close()
            self.fh = nxt.open("rb")
            self.base = self.next_offset
            self.pos = 0
            return True
        return False

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


class FileLogReader:
    """Reads all partitions, round-robin, picking up partitions created after it opened."""

    def __init__(self, cfg: dict[str, Any], group: str) -> None:
        self._cfg = cfg
        self._pdir = _partitions_dir(cfg)
        self._group_file = _root(cfg) / "consumers" / f"{partition_name(group)}.json"
        self._start: Offsets = {}
        self._cursors: dict[str, _Cursor] = {}
        self._last_scan = 0.0

    def seek(self, offsets: Offsets) -> None:
        for c in self._cursors.values():
            c.close()
        self._cursors = {}
        self._start = {str(k): int(v) for k, v in offsets.items()}
        self._scan(force=True)

    def subscribe(self, on_assign: Callable[[list[str]], None], on_revoke: Callable[[list[str]], None]) -> None:
        raise ConfigError(
            "log.type: a file capture log has no consumer groups to share; replayers that share one need a kafka log"
        )

    def _scan(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_scan < 0.5:
            return
        self._last_scan = now
        if not self._pdir.is_dir():
            return
        for name in os.listdir(self._pdir):
            if name not in self._cursors and (self._pdir / name).is_dir():
                self._cursors[name] = _Cursor(self._pdir / name, self._start.get(name, 0))

    def poll(self, max_records: int = 500, timeout: float = 0.5) -> list[LogEntry]:
        deadline = time.monotonic() + timeout
        while True:
            self._scan()
            out: list[LogEntry] = []
            for cursor in list(self._cursors.values()):
                out.extend(cursor.read(max_records - len(out)))
                if len(out) >= max_records:
                    break
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def commit(self, offsets: Offsets) -> None:
        merged = dict(self.committed() or {})
        merged.update({str(k): int(v) for k, v in offsets.items()})
        self._group_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._group_file.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as fh:
            fh.write(orjson.dumps(merged))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._group_file)

    def committed(self) -> Offsets | None:
        try:
            return {str(k): int(v) for k, v in orjson.loads(self._group_file.read_bytes()).items()}
        except FileNotFoundError:
            return None

    def end_offsets(self, *, cached: bool = False) -> Offsets:
        return end_offsets(self._cfg)  # reading the segments' tails is local and quick

    def close(self) -> None:
        for c in self._cursors.values():
            c.close()


def open_reader(cfg: dict[str, Any], group: str) -> FileLogReader:
    return FileLogReader(cfg, group)


def delete_group(cfg: dict[str, Any], group: str) -> None:
    (_root(cfg) / "consumers" / f"{partition_name(group)}.json").unlink(missing_ok=True)
