"""One worker process: claim a unit, stream its documents to the target, checkpoint, repeat.

Crash safety comes from the order of things: a batch's cursor becomes the unit's
checkpoint only after that batch and every batch before it were acknowledged by the
target (and their rejections flushed to the dead-letter queue). Writes are index
operations by `_id` with routing kept, so replaying from any checkpoint after a kill -9
rewrites the same documents and leaves the target exactly as a clean run would.

Run as `python -m mactl.backfill.worker` with a `JobSpec` on stdin (what `apply` does
for each local process), or in-process through `run_worker` (what `mactl worker` does).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mactl.backfill import deadletter
from mactl.backfill.bulk import Batch, BatchResult, BulkSender, Item, RateLimiter, action_line, source_line
from mactl.backfill.doc_transforms import DocumentTransformer
from mactl.backfill.leases import Counters, Lease, LeaseLost, LeaseStore
from mactl.backfill.prepare import lease_store, prepare
from mactl.backfill.sampling import Sampler
from mactl.backfill.source import open_snapshot_repository
from mactl.backfill.spec import JobSpec
from mactl.cluster import client_for
from mactl.errors import MactlError

CHECKPOINT_EVERY_S = float(os.environ.get("MACTL_BACKFILL_CHECKPOINT_S", "2.0"))
IDLE_POLL_S = 2.0


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Mark:
    """What the unit's checkpoint becomes once this batch (and all before it) is acknowledged."""

    cursor: Any
    read: int
    skipped: int
    dropped: int
    unmigratable: int


@dataclass
class WorkerSummary:
    holder: str
    units_done: list[str] = field(default_factory=list)
    units_lost: list[str] = field(default_factory=list)
    docs_written: int = 0
    docs_failed: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Worker:
    """The per-process state shared by all units this process works on."""

    def __init__(
        self, spec: JobSpec, *, holder: str | None = None, on_unit: Callable[[str, Counters], None] | None = None
    ) -> None:
        self.spec = spec
        self.holder = holder or new_holder_id()
        self.repo = open_snapshot_repository(spec.repository)
        self.store: LeaseStore = lease_store(spec)
        self.target = client_for(
            spec.target, pool_maxsize=max(4, spec.max_in_flight + 2), timeout=120, retry_for=0
        )  # BulkSender and the leases retry on their own, up to retryTimeoutSeconds
        self.sender = BulkSender(
            self.target,
            limiter=RateLimiter(spec.worker_bytes_per_s),
            retry_deadline_s=spec.retry_deadline_s,
            log=self.log,
        )
        self.transformer = DocumentTransformer(
            spec.transforms, base_dir=Path(spec.transforms_base_dir) if spec.transforms_base_dir else None
        )
        self.dlq = deadletter.open_sink(
            deadletter.Location(spec.deadletter, spec.address, spec.deadletter_endpoint), self.holder
        )
        self.pool = ThreadPoolExecutor(max_workers=max(1, spec.max_in_flight), thread_name_prefix="bulk")
        self.on_unit = on_unit
        self.meta: dict[str, Any] = {}

    def log(self, message: str) -> None:
        """One line on stderr (the worker's log file when `apply` started it)."""
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} {self.holder} {message}", file=sys.stderr, flush=True)

    def run(self) -> WorkerSummary:
        """Work until every unit of the generation is done."""
        self.meta = prepare(self.spec, self.repo, self.store)
        summary = WorkerSummary(self.holder)
        try:
            while True:
                lease = self.store.claim(self.holder)
                if lease is None:
                    if self.store.all_done():
                        self.log("every unit is done; exiting")
                        return summary
                    time.sleep(IDLE_POLL_S)  # others hold the rest; wait for them to finish or expire
                    continue
                cursor = lease.record.cursor
                self.log(f"claimed {lease.unit.key}" + (f", resuming after {cursor}" if cursor else ""))
                try:
                    counters = self.process(lease)
                except LeaseLost:
                    self.log(f"lost {lease.unit.key} to another worker (our lease expired); moving on")
                    summary.units_lost.append(lease.unit.key)
                    continue
                self.log(f"done {lease.unit.key}: {counters.to_json()}")
                summary.units_done.append(lease.unit.key)
                summary.docs_written += counters.written
                summary.docs_failed += counters.failed
        finally:
            self.pool.shutdown(wait=True)

    # -- one unit ----------------------------------------------------------------------

    def process(self, lease: Lease) -> Counters:
        unit = lease.unit
        spec = self.spec
        threshold = (self.meta.get("thresholds") or {}).get(unit.index)
        sampler = Sampler(None if threshold is None else int(threshold))
        keep_all = sampler.threshold is None
        counters = lease.record.counters  # as of the checkpoint we resume from
        committed = counters.copy()
        committed_cursor = lease.record.cursor
        after = self._cursor(committed_cursor)
        inflight: deque[tuple[Future[BatchResult], _Mark, Batch]] = deque()
        last_checkpoint = time.monotonic()
        identity = self.transformer.is_identity
        max_docs, max_bytes = spec.max_batch_docs, spec.max_batch_bytes
        batch = Batch()
        last_cursor: Any = None
        prefix_cache: dict[str, bytes] = {}

        def acknowledge(entry: tuple[Future[BatchResult], _Mark, Batch]) -> None:
            nonlocal committed_cursor, last_checkpoint
            future, mark, sent = entry
            result = self._await(future, lease)
            for rejection in result.rejected:
                item = rejection.item
                self.dlq.add(
                    deadletter.entry(
                        stage=spec.address,
                        unit=unit.key,
                        index=item.index,
                        doc_id=item.id,
                        routing=item.routing,
                        source_line=item.line.split(b"\n", 1)[1],
                        original=item.original,
                        status=rejection.status,
                        reason=rejection.reason,
                    )
                )
            committed.read, committed.skipped, committed.dropped = mark.read, mark.skipped, mark.dropped
            committed.unmigratable = mark.unmigratable
            committed.failed += len(result.rejected)
            for rejection in result.rejected:
                committed.add_failure(rejection.status, rejection.reason)
            committed.written += result.written
            for index, n in result.written_by_index.items():
                committed.written_by_index[index] = committed.written_by_index.get(index, 0) + n
            committed_cursor = mark.cursor
            if time.monotonic() - last_checkpoint >= CHECKPOINT_EVERY_S:
                self.dlq.flush()
                lease.checkpoint(committed_cursor, committed)
                last_checkpoint = time.monotonic()
                if self.on_unit:
                    self.on_unit(unit.key, committed)

        def submit() -> None:
            nonlocal batch
            mark = _Mark(
                last_cursor.to_json(), counters.read, counters.skipped, counters.dropped, counters.unmigratable
            )
            inflight.append((self.pool.submit(self.sender.send, batch), mark, batch))
            batch = Batch()
            while len(inflight) >= spec.max_in_flight:
                acknowledge(inflight.popleft())

        try:
            docs = self.repo.documents(spec.snapshot, unit.index, unit.shard, after=after, with_sourceless=True)
            for doc in docs:
                counters.read += 1
                last_cursor = doc.cursor
                if not doc.source:  # no `_source` in the snapshot: it cannot be rebuilt
                    counters.unmigratable += 1
                    continue
                if not keep_all and not sampler.keep(doc.id):
                    counters.skipped += 1
                    continue
                if identity:
                    prefix = prefix_cache.get(doc.index)
                    if prefix is None:
                        prefix = prefix_cache[doc.index] = b'{"index":{"_index":' + orjson.dumps(doc.index) + b',"_id":'
                    routing = doc.routing
                    if routing is None:
                        head = prefix + orjson.dumps(doc.id) + b"}}\n"
                    else:
                        head = prefix + orjson.dumps(doc.id) + b',"routing":' + orjson.dumps(routing) + b"}}\n"
                    batch.add(Item(head + source_line(doc.source), doc.index, doc.id, routing))
                else:
                    original = {
                        "_index": doc.index,
                        "_id": doc.id,
                        "_routing": doc.routing,
                        "_source": orjson.loads(doc.source),
                    }
                    out = self.transformer.apply(
                        doc.index, doc.id, doc.routing, dict(original["_source"]), getattr(doc, "type", None)
                    )
                    if out is None:
                        counters.dropped += 1
                        continue
                    line = action_line(out.index, out.id, out.routing) + orjson.dumps(out.source) + b"\n"
                    batch.add(Item(line, out.index, out.id, out.routing, original))
                if len(batch.items) >= max_docs or batch.nbytes >= max_bytes:
                    submit()
            if batch.items or batch.local_rejections:
                submit()
            while inflight:
                acknowledge(inflight.popleft())
        except BaseException:
            for future, _, _ in inflight:
                future.cancel()
            raise
        final_cursor = last_cursor.to_json() if last_cursor is not None else committed_cursor
        committed.read, committed.skipped, committed.dropped = counters.read, counters.skipped, counters.dropped
        committed.unmigratable = counters.unmigratable
        self.dlq.flush()
        lease.complete(final_cursor, committed)
        if self.on_unit:
            self.on_unit(unit.key, committed)
        return committed

    def _cursor(self, data: Any) -> Any:
        if data is None:
            return None
        from mactl.snapshot_reader import Cursor

        return Cursor.from_json(data)

    def _await(self, future: Future[BatchResult], lease: Lease) -> BatchResult:
        """Wait for a batch, renewing the lease meanwhile so a slow target does not cost it."""
        renew_every = max(1.0, self.spec.lease_seconds / 3)
        while True:
            try:
                return future.result(timeout=renew_every)
            except FutureTimeout:
                lease.renew()


def run_worker(spec: JobSpec, *, holder: str | None = None) -> WorkerSummary:
    return Worker(spec, holder=holder).run()


def _die_with_parent() -> None:
    """Linux: ask the kernel to kill this process when the process that started it dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main() -> int:
    if os.environ.get("MACTL_BACKFILL_DIE_WITH_PARENT") == "1":
        _die_with_parent()
        if os.getppid() == 1:
            return 1
    spec = JobSpec.from_json(sys.stdin.buffer.read())
    try:
        summary = run_worker(spec, holder=os.environ.get("MACTL_BACKFILL_HOLDER") or None)
    except MactlError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(summary.to_json()).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
