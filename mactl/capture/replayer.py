"""The replayer: captured requests, read from the log, sent to the target.

It reads every partition from a start position, keeps each client connection's requests
in order (all requests of a connection go to one worker thread, which sends them one at
a time), spaces them as the source saw them divided by `maxSpeedupFactor`, and holds
request bytes per second under `maxThroughputMbps` (megabits, 10^6 bits, per second,
counting request line, headers and body). Requests pass through the replay transforms
(`mactl.transforms`), lose the client's auth and gain the target's: a static
Authorization header for basic auth, or, for a `sigv4` target, an AWS SigV4 signature
made per request (and per retry) over exactly the method, path and query, Host,
Content-Type and body bytes sent (`mactl.sigv4`; credentials from the default AWS chain,
refreshed when they can be). Signature headers never reach the tuples, dead letters or
status file.

For each request it writes a *tuple* (source vs target: status, latency, body digest) to
an NDJSON file. A record that cannot be decoded or fails its transform goes to the
dead-letter file and the stream moves on. Offsets are committed (at least once a second
and on stop) up to the first record not yet answered, so a restarted replayer resumes
with nothing lost; a record may be sent twice after a crash, which is harmless for
writes by `_id`. Auto-id writes are sent with the id the source chose
(`mactl.capture.autoid`), so they are writes by `_id` too, and the target's ids match.

With `shared_group`, several replayers (the pods of a Kubernetes Job) share one Kafka
consumer group: each replays the partitions the group hands it, and when a partition moves
to another member (one joined, or one died) what this one finished is committed first, so
the next owner resumes there. A connection's records live in one partition, so its order
holds across replayers too.

Lag is now minus the source time of the oldest record not yet replayed, or 0 when the
replayer has caught up with the end of the log. The exit criteria hold once the lag has
stayed under `maxLagSeconds` for `lagWindowSeconds` with no status mismatch in the window.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import hashlib
import http.client
import queue
import ssl
import sys
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from mactl.capture import log as capture_log
from mactl.capture.autoid import pin_source_ids
from mactl.capture.record import Record, RecordDecodeError, decode, response_time_of
from mactl.capture.spec import ReplaySpec
from mactl.capture.time_order import TimeOrder
from mactl.errors import ConfigError, MactlError
from mactl.schema.common import Auth, TransformSpec
from mactl.schema.replay import LAG_WINDOW_SECONDS, MAX_LAG_SECONDS, MAX_SPEEDUP_FACTOR, MAX_THROUGHPUT_MBPS, WORKERS
from mactl.sigv4 import RequestSigner, SigningError, signer_for, wire_target
from mactl.state.workdir import StageFiles
from mactl.transforms import DROP, compile_chain

if TYPE_CHECKING:
    from mactl.capture.log import LogInputs
    from mactl.sigv4 import AuthInputs

_DROP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "expect",
        "authorization",
        "accept-encoding",
        "proxy-authorization",
        "te",
        "upgrade",
    }
)
_RETRY_STATUS = frozenset({429, 503})
# How long a revoked partition's requests in flight get to finish before its offsets are
# committed for the next owner (what is still in flight then is replayed twice: by `_id`).
_REVOKE_DRAIN_S = 5.0


@dataclass
class ReplayOptions:
    """What the replay stage's inputs say, resolved (auth header built, paths absolute)."""

    target_url: str
    target_authorization: str | None = None
    target_signer: RequestSigner | None = None  # sigv4 targets: signs each request as sent
    insecure: bool = False
    max_speedup: float = MAX_SPEEDUP_FACTOR
    max_throughput_mbps: float | None = MAX_THROUGHPUT_MBPS
    transforms: Sequence[TransformSpec] = ()
    transforms_base_dir: Path | None = None  # where a transform's relative `file:` starts: the config's folder
    max_lag_s: float = MAX_LAG_SECONDS
    lag_window_s: float = LAG_WINDOW_SECONDS
    workers: int = WORKERS
    tuples_path: Path | None = None
    deadletter_path: Path | None = None
    status_path: Path | None = None
    commit_interval_s: float = 1.0
    request_timeout_s: float = 60.0
    causality_timeout_s: float = 2.0
    start_time: float | None = None  # skip records captured before this (time-only start points)
    # Where tuples and dead letters go instead of the files above (a replay Job's pods: a Kafka
    # topic apply and validate read): anything with write(bytes), flush(), close() and `closed`.
    tuples_stream: LineSink | None = None
    deadletter_stream: LineSink | None = None


class LineSink(Protocol):
    """A binary stream the replayer writes one NDJSON line to per `write`."""

    @property
    def closed(self) -> bool: ...

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _auth_data(auth: AuthInputs) -> dict[str, Any]:
    if auth is None:
        return {}
    return auth.model_dump() if isinstance(auth, Auth) else dict(auth)


def _auth_type(auth: AuthInputs) -> str:
    return str(_auth_data(auth).get("type") or "none")


def authorization_for(auth: AuthInputs, where: str = "target.auth") -> str | None:
    """The one static Authorization header value for a `ClusterRef.auth` (model or dict).

    None for no auth. SigV4 has no static header (each request is signed on its own):
    it is a `ConfigError` here; the replayer signs through `options_from_spec`, and the
    switchover's proxies sign for themselves (`mactl.capture.proxy`, given the region
    and service). `where` is the auth block's config path.
    """
    kind = _auth_type(auth)
    if kind == "none":
        return None
    if kind == "basic":
        data = _auth_data(auth)
        password: Any = data.get("password")
        if hasattr(password, "get_secret_value"):
            password = password.get_secret_value()
        token = base64.b64encode(f"{data.get('username') or ''}:{password or ''}".encode()).decode()
        return f"Basic {token}"
    if kind == "sigv4":
        raise ConfigError(
            f"{where}.type: sigv4 signs every request on its own; it cannot be one static Authorization header"
        )
    raise ConfigError(f"{where}.type: unknown auth type {kind!r} (none, basic or sigv4)")


def options_from_spec(spec: ReplaySpec, workdir: Path) -> ReplayOptions:
    """A job spec (the replay stage's inputs plus group/start/workdir) → `ReplayOptions`."""
    target = spec.target
    sigv4 = target.auth.type == "sigv4"
    files = StageFiles(workdir)
    return ReplayOptions(
        target_url=target.endpoint,
        target_authorization=None if sigv4 else authorization_for(target.auth),
        target_signer=signer_for(target.auth, "target.auth") if sigv4 else None,
        insecure=target.insecure,
        max_speedup=spec.maxSpeedupFactor,
        max_throughput_mbps=spec.maxThroughputMbps,
        transforms=list(spec.transforms),
        transforms_base_dir=Path(spec.transformsBaseDir) if spec.transformsBaseDir else None,
        max_lag_s=spec.maxLagSeconds,
        lag_window_s=spec.lagWindowSeconds,
        workers=spec.workers,
        tuples_path=files.replay_tuples,
        deadletter_path=files.replay_dead_letters,
        status_path=files.replayer_status,
        start_time=spec.startTime,
    )


@dataclass
class Status:
    """A snapshot of the replayer's progress; also what the status file holds."""

    replayed: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    mismatches: int = 0
    target_4xx: int = 0
    bytes_sent: int = 0
    lag_s: float = 0.0
    in_sync: bool = False
    caught_up: bool = False
    committed: dict[str, int] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    good_since: float | None = None
    last_source_time: float | None = None
    causality_timeouts: int = 0
    skipped_before_start: int = 0
    ids_pinned: int = 0  # auto-id documents sent with the id the source chose
    partitions: list[str] | None = None  # with a shared group: the partitions this replayer holds

    def to_json(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "dropped": self.dropped,
            "deadLettered": self.dead_lettered,
            "idsPinned": self.ids_pinned,
            "mismatches": self.mismatches,
            "target4xx": self.target_4xx,
            "bytesSent": self.bytes_sent,
            "lagSeconds": round(self.lag_s, 3),
            "inSync": self.in_sync,
            "caughtUp": self.caught_up,
            "committed": dict(self.committed),
            "startedAt": self.started_at,
            "updatedAt": time.time(),
            "lastSourceTime": self.last_source_time,
            "causalityWaitTimeouts": self.causality_timeouts,
            "skippedBeforeStart": self.skipped_before_start,
            **({"partitions": list(self.partitions)} if self.partitions is not None else {}),
        }


class ThroughputLimiter:
    """Token bucket over bytes that may go into debt: a big request waits its share after."""

    def __init__(self, mbps: float | None) -> None:
        self.rate = mbps * 1_000_000 / 8 if mbps else None
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = time.monotonic()
        self._burst = (self.rate or 0) * 0.05

    def acquire(self, size: int, stop: threading.Event) -> None:
        if self.rate is None:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= size
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            stop.wait(wait)


class _Causality:
    """Requests that finished on the source before another began must finish on the target
    first, even across connections (a PUT that creates an index, then a DELETE of it on
    another connection). Each worker waits, up to `timeout`, until every dispatched request
    of the *other* workers whose source response came before its own source request is done.

    Why not its own worker's: a worker sends its queue in order, so such a request of its own
    is either done already or queued behind the one waiting, and cannot finish first; waiting
    for it only ever ran into the timeout. Requests of one connection go to one worker and
    are sequential anyway.

    This wait only works when requests reach the workers near their source-time order: the
    read loop merges a multi-partition log's runs by time first (`time_order`); otherwise
    two workers can each wait for a request queued behind the other's, and every such wait
    ends in its timeout (`bench/replay_causality.py` measured 1,000 requests over 8 Kafka
    partitions at 375 s with 741 timeouts before the merge, 1.25 s with none after).
    """

    def __init__(self, timeout: float, workers: int = 1) -> None:
        self._cv = threading.Condition()
        # Per worker, the source response times of its unfinished requests, sorted.
        self._open: list[list[float]] = [[] for _ in range(max(1, workers))]
        self.timeout = timeout
        self.timeouts = 0

    def add(self, response_time: float, worker: int = 0) -> None:
        with self._cv:
            bisect.insort(self._open[worker], response_time)

    def done(self, response_time: float, worker: int = 0) -> None:
        with self._cv:
            pending = self._open[worker]
            i = bisect.bisect_left(pending, response_time)
            if i < len(pending) and pending[i] == response_time:
                pending.pop(i)
            self._cv.notify_all()

    def _clear(self, request_time: float, worker: int) -> bool:
        return all(not pending or pending[0] >= request_time for w, pending in enumerate(self._open) if w != worker)

    def wait_before(self, request_time: float, stop: threading.Event, worker: int = 0) -> None:
        with self._cv:
            ok = self._cv.wait_for(lambda: stop.is_set() or self._clear(request_time, worker), self.timeout)
            if not ok:
                self.timeouts += 1


def _source_time(entry: capture_log.LogEntry) -> float:
    """What the partitions are merged by: when the source answered the request (a request
    that began after it must replay after it), or when it was stored if unreadable."""
    stamp = None if entry.corrupt else response_time_of(entry.payload)
    return entry.timestamp if stamp is None else stamp


class _OffsetTracker:
    """Commit point per partition: the first offset handed out and not yet finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, OrderedDict[int, tuple[bool, float]]] = {}
        self._next: dict[str, int] = {}

    def start(self, partition: str, offset: int, source_time: float) -> None:
        with self._lock:
            self._pending.setdefault(partition, OrderedDict())[offset] = (False, source_time)
            self._next[partition] = offset + 1

    def finish(self, partition: str, offset: int) -> None:
        with self._lock:
            pend = self._pending.get(partition)
            if pend is None or offset not in pend:
                return  # a partition handed to another replayer meanwhile (`forget`)
            pend[offset] = (True, pend[offset][1])
            while pend and next(iter(pend.values()))[0]:
                pend.popitem(last=False)

    def commit_point(self) -> dict[str, int]:
        with self._lock:
            return {p: (next(iter(pend)) if pend else self._next[p]) for p, pend in self._pending.items()}

    def pending(self, partitions: set[str] | None = None) -> int:
        with self._lock:
            return sum(len(p) for name, p in self._pending.items() if partitions is None or name in partitions)

    def forget(self, partitions: set[str]) -> None:
        """Stop tracking partitions that are another replayer's now."""
        with self._lock:
            for name in partitions:
                self._pending.pop(name, None)
                self._next.pop(name, None)

    def oldest_pending_time(self) -> float | None:
        with self._lock:
            times = [t for pend in self._pending.values() for done, t in pend.values() if not done]
        return min(times) if times else None


@dataclass
class _Item:
    partition: str
    offset: int
    record: Record
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    due: float  # monotonic time to send at
    worker: int = 0  # the sender thread (queue) it goes to: one per connection


def _parse_body(rec: Record, content_type: str) -> Any:
    if not rec.body:
        return None
    text = rec.body.decode("utf-8")
    path = rec.path.split("?", 1)[0]
    if "ndjson" in content_type or path.endswith(("/_bulk", "/_msearch")) or path in ("/_bulk", "_bulk"):
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _serialize_body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, list):
        return b"".join(orjson.dumps(line) + b"\n" for line in body)
    return orjson.dumps(body)


def outcomes_match(method: str, path: str, source_status: int, target_status: int, target_body: bytes) -> bool:
    """Same status, or the same outcome reached another way.

    Replay starts before the snapshot began, so some writes are already on the target:
    a re-indexed document answers 200 where the source said 201, a deleted document
    answers 404, an index created by the metadata stage answers
    `resource_already_exists_exception`. Those are the target agreeing, not a mismatch.
    """
    if source_status == target_status:
        return True
    if {source_status, target_status} <= {200, 201}:
        return True
    if method == "DELETE" and source_status == 200 and target_status == 404:
        return True
    if (
        method == "PUT"
        and source_status == 200
        and target_status == 400
        and b"resource_already_exists_exception" in target_body
    ):
        return True
    return False


def _bulk_errors(body: bytes) -> bool | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return bool(data.get("errors")) if isinstance(data, dict) and "errors" in data else None


class Replayer:
    """Replay one log onto one target. `run()` blocks; `stop` ends it cleanly."""

    def __init__(self, log_inputs: LogInputs, group: str, options: ReplayOptions) -> None:
        self.log_inputs = log_inputs
        self.group = group
        self.opts = options
        if options.max_speedup <= 0:
            raise ConfigError("maxSpeedupFactor: must be greater than 0")
        parts = urlsplit(options.target_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"target.endpoint: not an http(s) URL: {options.target_url!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        # The Host header sent (and, for sigv4, signed): no port when it is the default one.
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if self._port == (443 if parts.scheme == "https" else 80) else f"{host}:{self._port}"
        self._signer = options.target_signer
        self._prefix = parts.path.rstrip("/")
        self._chain = (
            compile_chain(list(options.transforms), base_dir=options.transforms_base_dir)
            if options.transforms
            else None
        )
        self.status = Status()
        self.stop = threading.Event()
        self._tracker = _OffsetTracker()
        self._causality = _Causality(options.causality_timeout_s, max(1, options.workers))
        self._order = TimeOrder()  # the read loop's merge of the partitions (see `run`)
        self._limiter = ThroughputLimiter(options.max_throughput_mbps)
        self._lock = threading.Lock()
        self._anchor: tuple[float, float] | None = None  # (source time, monotonic time)
        self._tuples: LineSink | None = options.tuples_stream or (
            options.tuples_path.open("ab") if options.tuples_path else None
        )
        self._dead: LineSink | None = options.deadletter_stream or (
            options.deadletter_path.open("ab") if options.deadletter_path else None
        )
        self._idle = True
        self._mismatch_mark = 0
        self._queues: list[queue.Queue[_Item | None]] = [
            queue.Queue(maxsize=2000) for _ in range(max(1, options.workers))
        ]
        self.first_send: float | None = None
        self.last_send: float | None = None

    # ------------------------------------------------------------------ I/O helpers
    def _connection(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            ctx = ssl.create_default_context()
            if self.opts.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.opts.request_timeout_s, context=ctx)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.opts.request_timeout_s)

    def _write_line(self, fh: Any, data: dict[str, Any]) -> None:
        if fh is None:
            return
        with self._lock:
            fh.write(orjson.dumps(data) + b"\n")

    def _dead_letter(self, partition: str, offset: int, reason: str, payload: bytes) -> None:
        self._write_line(
            self._dead,
            {
                "partition": partition,
                "offset": offset,
                "reason": reason,
                "time": time.time(),
                "payload": base64.b64encode(payload).decode(),
            },
        )
        with self._lock:
            self.status.dead_lettered += 1

    # ------------------------------------------------------------------ preparing requests
    def _prepare(self, partition: str, offset: int, captured: Record) -> _Item | None:
        rec = captured
        pinned = pin_source_ids(captured)
        if pinned is not None:  # transforms see the explicit-id request
            rec = dataclasses.replace(captured, method=pinned.method, path=pinned.path, body=pinned.body)
            with self._lock:
                self.status.ids_pinned += pinned.documents
        method, path, body_bytes = rec.method, rec.path, rec.body
        headers = [(k, v) for k, v in rec.headers if k.lower() not in _DROP_HEADERS]
        if self._chain is not None:
            content_type = (rec.header("content-type") or "").lower()
            request = {
                "method": method,
                "path": path,
                "headers": {k.lower(): v for k, v in headers},
                "body": _parse_body(rec, content_type),
            }
            context = {"request": request, "source": {"status": rec.status}, "connection": rec.connection_id}

            def rebuild(result: Any, ctx: dict[str, Any]) -> dict[str, Any]:
                if not isinstance(result, dict):
                    raise MactlError(f"a replay transform must return an object, got {type(result).__name__}")
                merged = dict(ctx["request"])
                merged.update({k: v for k, v in result.items() if k in ("method", "path", "headers", "body")})
                return {**ctx, "request": merged}

            out = self._chain(context, rebuild)
            if out is DROP:
                return None
            final = rebuild(out, context)["request"]
            method, path = str(final["method"]), str(final["path"])
            headers = [(str(k), str(v)) for k, v in dict(final["headers"]).items() if k.lower() not in _DROP_HEADERS]
            body_bytes = _serialize_body(final["body"])
        if self._signer is not None:
            # signed in `_send`, per attempt; the client's own x-amz-* headers were made
            # for another request and would either be unsigned or clash with ours
            headers = [(k, v) for k, v in headers if not k.lower().startswith("x-amz-")]
            return _Item(
                partition, offset, captured, method, wire_target(self._prefix + path), headers, body_bytes, 0.0
            )
        if self.opts.target_authorization:
            headers.append(("Authorization", self.opts.target_authorization))
        return _Item(partition, offset, captured, method, self._prefix + path, headers, body_bytes, 0.0)

    def _schedule(self, rec: Record) -> float:
        now = time.monotonic()
        if self._anchor is None or self._idle:
            # first record, or the first after catching up: timing restarts from here
            self._anchor = (rec.request_time, now)
            self._idle = False
        src0, mono0 = self._anchor
        return mono0 + max(0.0, rec.request_time - src0) / self.opts.max_speedup

    # ------------------------------------------------------------------ workers
    def _worker(self, q: queue.Queue[_Item | None]) -> None:
        conn = self._connection()
        while True:
            item = q.get()
            if item is None:
                conn.close()
                return
            delay = item.due - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return  # stopping: this item stays uncommitted and is replayed on resume
            size = (
                len(item.method)
                + len(item.path)
                + 12
                + sum(len(k) + len(v) + 4 for k, v in item.headers)
                + len(item.body)
            )
            self._causality.wait_before(item.record.request_time, self.stop, item.worker)
            self._limiter.acquire(size, self.stop)
            if self.stop.is_set():
                return
            conn, status, latency, body = self._send(conn, item)
            if status is None:
                return  # stopped while retrying
            self._finish(item, status, latency, body, size)

    def _send(
        self, conn: http.client.HTTPConnection, item: _Item
    ) -> tuple[http.client.HTTPConnection, int | None, float, bytes]:
        backoff = 0.2
        attempt = 0
        while not self.stop.is_set():
            attempt += 1
            started = time.monotonic()
            try:
                headers = item.headers
                if self._signer is not None:  # signed now: a retry gets a fresh X-Amz-Date
                    headers = headers + self._signer.sign(
                        item.method, self._scheme, self._host_header, item.path, headers, item.body
                    )
                conn.putrequest(item.method, item.path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", self._host_header)
                for k, v in headers:
                    conn.putheader(k, v)
                conn.putheader("Content-Length", str(len(item.body)))
                conn.endheaders(item.body)
                resp = conn.getresponse()
                body = resp.read()
                latency = time.monotonic() - started
                if resp.will_close:
                    conn.close()
                    conn = self._connection()
                if resp.status in _RETRY_STATUS and item.record.status not in _RETRY_STATUS and attempt < 5:
                    self.stop.wait(backoff)
                    backoff *= 2
                    continue
                with self._lock:
                    if self.first_send is None:
                        self.first_send = started
                    self.last_send = started
                return conn, resp.status, latency, body
            except (OSError, http.client.HTTPException, SigningError):
                conn.close()
                conn = self._connection()
                # target unreachable, or credentials not refreshable right now: wait, never skip
                self.stop.wait(min(backoff, 5.0))
                backoff *= 2
        return conn, None, 0.0, b""

    def _finish(self, item: _Item, status: int, latency: float, body: bytes, size: int) -> None:
        rec = item.record
        mismatch = not outcomes_match(item.method, item.path, rec.status, status, body)
        if not mismatch and "_bulk" in item.path:
            src, tgt = _bulk_errors(rec.response_body), _bulk_errors(body)
            mismatch = src is not None and tgt is not None and src != tgt
        self._write_line(
            self._tuples,
            {
                "partition": item.partition,
                "offset": item.offset,
                "connection": rec.connection_id,
                "seq": rec.seq,
                "method": item.method,
                "path": item.path,
                "sourceTime": rec.request_time,
                "source": {
                    "status": rec.status,
                    "latencyMs": round((rec.response_time - rec.request_time) * 1000, 3),
                    "bodySha256": hashlib.sha256(rec.response_body).hexdigest(),
                },
                "target": {
                    "status": status,
                    "latencyMs": round(latency * 1000, 3),
                    "bodySha256": hashlib.sha256(body).hexdigest(),
                },
                "match": not mismatch,
                "replayedAt": time.time(),  # with sourceTime: the replay lag over time (audit plots)
            },
        )
        with self._lock:
            self.status.replayed += 1
            self.status.bytes_sent += size
            self.status.last_source_time = max(self.status.last_source_time or 0.0, rec.request_time)
            if mismatch:
                self.status.mismatches += 1
            if 400 <= status < 500:
                self.status.target_4xx += 1
        self._tracker.finish(item.partition, item.offset)
        self._causality.done(rec.response_time, item.worker)

    # ------------------------------------------------------------------ the run loop
    def run(
        self,
        start: dict[str, int] | None,
        *,
        resume: bool = True,
        until_in_sync: bool = True,
        until_caught_up: bool = False,
        timeout_s: float | None = None,
        on_status: Callable[[Status], None] | None = None,
        shared_group: bool = False,
    ) -> Status:
        """Replay until the exit criteria hold (or forever when `until_in_sync` is False,
        until `stop` is set). Returns the final status; `status.in_sync` tells which.

        `shared_group`: take the partitions the consumer group hands this replayer, each from
        the group's committed offset (whoever starts the group sets those: `start` and
        `resume` are not used)."""
        reader = capture_log.open_reader(self.log_inputs, self.group)
        begin: dict[str, int] = {}
        ends: dict[str, int] = {}  # the time-order merge's view of the partitions (see `TimeOrder`)
        if shared_group:
            self.status.partitions = []
            reader.subscribe(self._assigned, lambda parts: self._revoked(reader, parts))
        else:
            # Asked before reading starts: once the consumer long-polls, a query waits behind it.
            ends = reader.end_offsets()
            committed = reader.committed() if resume else None
            begin = dict(start or {})
            if committed:
                begin.update(committed)
            reader.seek(begin)
            if begin:  # so a crash before the first periodic commit resumes here, not at offset 0
                reader.commit(begin)
            self.status.committed = dict(begin)
        threads = [
            threading.Thread(target=self._worker, args=(q,), daemon=True, name=f"replay-{i}")
            for i, q in enumerate(self._queues)
        ]
        for t in threads:
            t.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last_commit = last_report = time.monotonic()
        self._order = TimeOrder(begin, stamp=_source_time)
        last_ends = time.monotonic()
        try:
            while not self.stop.is_set():
                entries = reader.poll(500, 0.2)
                now = time.monotonic()
                if (shared_group or len(ends) > 1) and now - last_ends >= 0.5:  # one partition: no merge
                    ends, last_ends = self._owned_ends(reader, ends), now
                self._order.add(entries, now)
                for entry in self._order.take(ends if len(ends) > 1 else {}, now):
                    self._dispatch(entry)
                    if self.stop.is_set():
                        break
                if not entries and not self._order and self._tracker.pending() == 0:
                    self._idle = True
                self._update_lag(caught_up=not entries and not self._order)
                if now - last_commit >= self.opts.commit_interval_s:
                    self._commit(reader)
                    last_commit = now
                if now - last_report >= 0.5:
                    self._write_status()
                    if on_status is not None:
                        on_status(self.status)
                    last_report = now
                if until_in_sync and self.status.in_sync:
                    break
                if until_caught_up and self.status.caught_up:
                    break  # everything in the log is replayed (a log that no longer grows)
                if deadline is not None and now >= deadline:
                    break
        finally:
            if self.status.in_sync and not self.stop.is_set():
                # done: what was already read is replayed before stopping (drain, don't drop)
                for entry in self._order.take_all():
                    self._dispatch(entry)
                for q in self._queues:
                    self._put(q, None)
                for t in threads:
                    t.join(timeout=self.opts.request_timeout_s + self.opts.max_lag_s)
                self._update_lag(caught_up=False)
            self.stop.set()
            for q in self._queues:
                try:
                    q.put_nowait(None)
                except queue.Full:
                    pass  # the worker sees `stop` before its next send
            for t in threads:
                t.join(timeout=self.opts.request_timeout_s)
            self._commit(reader)
            self._write_status()
            reader.close()
            for fh in (self._tuples, self._dead):
                if fh is not None:
                    fh.close()
        return self.status

    def _put(self, q: queue.Queue[_Item | None], item: _Item | None) -> None:
        """Blocks while the worker is full (backpressure on reading), until stopped."""
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _owned_ends(self, reader: capture_log.LogReader, known: dict[str, int]) -> dict[str, int]:
        """The end offsets of the partitions this replayer reads, for the time-order merge:
        what the reader learnt as it read, over `known` (asked before reading). In a shared
        group, the partitions the group gave it, one not heard of yet counted as having more
        to read (so what the others hold waits for it, at most `TimeOrder.hold_s`)."""
        ends = {**known, **reader.end_offsets(cached=True)}
        owned = self.status.partitions
        if owned is None:
            return ends
        return {p: ends.get(p, sys.maxsize) for p in owned}

    def _assigned(self, partitions: list[str]) -> None:
        with self._lock:
            self.status.partitions = sorted({*(self.status.partitions or []), *partitions}, key=int)

    def _revoked(self, reader: capture_log.LogReader, partitions: list[str]) -> None:
        """Partitions going to another replayer: let what is in flight finish (briefly),
        commit what is done, and stop tracking them."""
        gone = set(partitions)
        deadline = time.monotonic() + _REVOKE_DRAIN_S
        while self._tracker.pending(gone) and time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(0.05)
        point = {p: o for p, o in self._tracker.commit_point().items() if p in gone}
        with self._lock:
            for fh in (self._tuples, self._dead):
                if fh is not None and not fh.closed:
                    fh.flush()
        if point:
            reader.commit(point)
        self._tracker.forget(gone)
        self._order.forget(gone)
        if self.stop.is_set():
            return  # stopping: the last status says what this replayer held and committed
        with self._lock:
            self.status.partitions = [p for p in self.status.partitions or [] if p not in gone]
            for p in gone:
                self.status.committed.pop(p, None)

    def _dispatch(self, entry: capture_log.LogEntry) -> None:
        if self.status.partitions is not None and entry.partition not in self.status.partitions:
            return  # fetched before its partition went to another replayer: the new owner reads it
        if entry.corrupt:
            self._skip(entry, "stored frame failed its CRC check")
            return
        try:
            rec = decode(entry.payload)
        except RecordDecodeError as exc:
            self._skip(entry, f"undecodable record: {exc}")
            return
        self._tracker.start(entry.partition, entry.offset, rec.request_time)
        if self.opts.start_time is not None and rec.request_time < self.opts.start_time:
            with self._lock:
                self.status.skipped_before_start += 1
            self._tracker.finish(entry.partition, entry.offset)
            return
        try:
            item = self._prepare(entry.partition, entry.offset, rec)
        except (MactlError, UnicodeDecodeError, orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            self._dead_letter(entry.partition, entry.offset, f"transform failed: {exc}", entry.payload)
            self._tracker.finish(entry.partition, entry.offset)
            return
        if item is None:
            with self._lock:
                self.status.dropped += 1
            self._tracker.finish(entry.partition, entry.offset)
            return
        item.due = self._schedule(rec)
        item.worker = zlib.crc32(rec.connection_id.encode()) % len(self._queues)
        self._causality.add(rec.response_time, item.worker)
        self._put(self._queues[item.worker], item)

    def _skip(self, entry: capture_log.LogEntry, reason: str) -> None:
        self._tracker.start(entry.partition, entry.offset, entry.timestamp)
        self._dead_letter(entry.partition, entry.offset, reason, entry.payload)
        self._tracker.finish(entry.partition, entry.offset)

    def _update_lag(self, *, caught_up: bool) -> None:
        now_wall = time.time()
        oldest = self._tracker.oldest_pending_time()
        with self._lock:
            st = self.status
            st.caught_up = caught_up and oldest is None
            st.lag_s = 0.0 if oldest is None else max(0.0, now_wall - oldest)
            good = st.lag_s < self.opts.max_lag_s
            mark = st.mismatches
            if not good or mark != self._mismatch_mark:
                st.good_since = None
                self._mismatch_mark = mark
            elif st.good_since is None:
                st.good_since = now_wall
            st.in_sync = st.good_since is not None and now_wall - st.good_since >= self.opts.lag_window_s

    def _commit(self, reader: capture_log.LogReader) -> None:
        point = self._tracker.commit_point()
        with self._lock:  # tuples and dead letters of committed records reach the file first
            for fh in (self._tuples, self._dead):
                if fh is not None and not fh.closed:
                    fh.flush()
        if point:
            reader.commit(point)
            with self._lock:
                self.status.committed.update(point)

    def _write_status(self) -> None:
        self.status.causality_timeouts = self._causality.timeouts
        path = self.opts.status_path
        if path is None:
            return
        with self._lock:
            data = self.status.to_json()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data))
        tmp.replace(path)
