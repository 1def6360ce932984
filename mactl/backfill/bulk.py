"""`_bulk` writes: bodies built as bytes, bounded batches, several requests in flight, a
throughput cap, and retries that outlast a target outage.

A `Batch` collects index operations as ready-made NDJSON lines. The stored `_source`
bytes go into the body untouched when no transform applies (no parse, no re-dump), which
is most of the speed of a backfill. `BulkSender.send(batch)` returns a `BatchResult` once
every document of the batch is either written or rejected for good: whole-request
failures (429, 5xx, connection errors) and per-item 429/5xx are retried with backoff, and
per-item rejections (mapping errors…) come back as `Rejection`s for the dead-letter queue.
Callers acknowledge batches in order; this module keeps no cursor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from mactl.backfill.retry import RETRYABLE_STATUS, TargetUnavailable, backoff_delay

# `pipeline=_none`: a document in the snapshot is already what the source's ingest pipeline
# made of it. Running the target index's `default_pipeline` again would change it a second
# time (or, for a pipeline missing on the target, reject every document). A `final_pipeline`
# always runs; the metadata stage names those.
_BULK_PARAMS = {"filter_path": "errors,items.*.status,items.*.error", "pipeline": "_none"}
_HEADERS = {"content-type": "application/json"}


def action_line(index: str, doc_id: str, routing: str | None) -> bytes:
    """`{"index":{...}}\\n` for one document: idempotent by `_id`, routing kept."""
    meta: dict[str, str] = {"_index": index, "_id": doc_id}
    if routing is not None:
        meta["routing"] = routing
    return orjson.dumps({"index": meta}) + b"\n"


def source_line(raw: bytes) -> bytes:
    """The stored `_source` as one NDJSON line, re-serialised only if it spans lines."""
    if b"\n" in raw or b"\r" in raw:
        raw = orjson.dumps(orjson.loads(raw))
    return raw + b"\n"


@dataclass(frozen=True)
class Item:
    """One index operation of a batch, with what the dead-letter queue needs about it."""

    line: bytes  # action line + source line
    index: str
    id: str
    routing: str | None
    original: Any = None  # the snapshot document before transforms, when a transform ran


@dataclass(frozen=True)
class Rejection:
    item: Item
    status: int
    reason: Any


@dataclass
class Batch:
    items: list[Item] = field(default_factory=list)
    nbytes: int = 0
    local_rejections: list[Rejection] = field(default_factory=list)  # refused before sending (no _source…)

    def add(self, item: Item) -> None:
        self.items.append(item)
        self.nbytes += len(item.line)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class BatchResult:
    written_by_index: dict[str, int] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    retries: int = 0

    @property
    def written(self) -> int:
        return sum(self.written_by_index.values())


class RateLimiter:
    """A byte-rate cap shared by the sending threads of one process (None: no cap).

    In bytes per second: the stage's `maxThroughputMbps` (megabits) is converted and
    split between the workers by `JobSpec.worker_bytes_per_s`.
    """

    def __init__(self, bytes_per_s: float | None) -> None:
        self._rate = None if not bytes_per_s else bytes_per_s
        self._lock = threading.Lock()
        self._next_free = time.monotonic()

    def acquire(self, nbytes: int) -> None:
        if self._rate is None:
            return
        with self._lock:
            start = max(self._next_free, time.monotonic())
            self._next_free = start + nbytes / self._rate
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class BulkSender:
    """Sends batches to one target, retrying through outages up to `retry_deadline_s`."""

    def __init__(
        self,
        client: OpenSearch,
        *,
        limiter: RateLimiter | None = None,
        retry_deadline_s: float = 600.0,
        timeout_s: float = 120.0,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self._client = client
        self._log = log
        self._limiter = limiter or RateLimiter(None)
        self._deadline = retry_deadline_s
        self._timeout = timeout_s

    def send(self, batch: Batch) -> BatchResult:
        result = BatchResult(rejected=list(batch.local_rejections))
        pending = batch.items
        attempt = 0
        started = time.monotonic()
        while pending:
            body = b"".join(item.line for item in pending)
            self._limiter.acquire(len(body))
            status: int | None
            response: dict[str, Any] | None
            try:
                status, response = self._post(body)
            except (OSConnectionError, TransportError) as exc:
                status, response = _status_of(exc), None
            if response is None:
                if status is not None and status not in RETRYABLE_STATUS:
                    raise TargetUnavailable(f"the target refused a _bulk request with HTTP {status}")
                self._wait(attempt, started, f"HTTP {status}" if status else "connection error")
                attempt += 1
                result.retries += 1
                continue
            retry: list[Item] = []
            if not response.get("errors"):
                for item in pending:
                    result.written_by_index[item.index] = result.written_by_index.get(item.index, 0) + 1
            else:
                for item, outcome in zip(pending, _outcomes(response), strict=True):
                    code = int(outcome.get("status", 0))
                    if 200 <= code < 300:
                        result.written_by_index[item.index] = result.written_by_index.get(item.index, 0) + 1
                    elif code in RETRYABLE_STATUS:
                        retry.append(item)
                    else:
                        result.rejected.append(Rejection(item, code, outcome.get("error")))
            pending = retry
            if pending:
                self._wait(attempt, started, f"{len(pending)} documents rejected with 429/5xx")
                attempt += 1
                result.retries += 1
        return result

    def _post(self, body: bytes) -> tuple[int, dict[str, Any] | None]:
        connection = self._client.transport.get_connection()
        status, _headers, raw = connection.perform_request(
            "POST",
            "/_bulk",
            params=_BULK_PARAMS,
            body=body,
            timeout=self._timeout,
            headers=_HEADERS,
            ignore=tuple(RETRYABLE_STATUS),
        )
        if status in RETRYABLE_STATUS:
            return status, None
        return status, orjson.loads(raw)

    def _wait(self, attempt: int, started: float, why: str) -> None:
        if time.monotonic() - started > self._deadline:
            raise TargetUnavailable(f"_bulk kept failing for {self._deadline:.0f}s ({why})")
        delay = backoff_delay(attempt)
        self._log(f"_bulk failed ({why}); retry {attempt + 1} in {delay:.1f}s")
        time.sleep(delay)


def _status_of(exc: Exception) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _outcomes(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in response.get("items", []):
        yield next(iter(entry.values()))
