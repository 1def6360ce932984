"""The capture proxy: an asyncio HTTP/1.1 reverse proxy in front of the source.

Every request is forwarded. A mutating request (PUT/POST/DELETE/PATCH that is not a
read such as `POST _search`) is recorded to the capture log together with the source's
response *before* the response goes back to the client, so a client that saw its write
acknowledged knows it is in the log. A read's answer streams back as it arrives, without
being buffered or parsed beyond its framing (`mactl.capture.http1`).

Each client connection gets its own upstream connection; requests on it are handled one
at a time in arrival order, which keeps pipelined requests (and their responses) in
order. Bodies may be Content-Length, chunked or (answers only) close-delimited; they are
forwarded as received and recorded de-chunked. Back-pressure runs both ways: a slow
client pauses reading from the source, a slow source pauses reading from the client.

Control endpoints (never forwarded, never captured) live under `/__mactl/`:
`GET health`, `POST capture/start`, `POST capture/stop`, `POST route?to=target|source`
(body `{"url": ..., "insecure": ..., "authorization": ...}` names the target). The proxy
starts NOT capturing: the capture stage signals it once every proxy is up (the seed's
"signal proxy to write"). While routed to the target it does not record: those writes
never reached the source, so they have nothing to replay.

A target behind AWS SigV4 is routed to with `"sigv4": {"region": ..., "service": "es" |
"aoss"}` instead of `authorization`. The proxy then signs every request it forwards
there itself (`mactl.sigv4.RequestSigner`), with credentials from its own process's
default AWS chain (a proxy started by the capture stage inherits the environment of that
`mactl apply`); they are resolved, off the event loop, when the route call arrives, and
a proxy that has none answers it 400. What is sent is exactly what was signed: the
request target in `wire_target` form, `Host` without a default port, the client's
`Authorization` and `X-Amz-*` headers dropped, and the body de-chunked with a
`Content-Length`. A request that cannot be signed later (credentials that no longer
refresh) is answered 502 with a JSON error. The source route never signs: its fast path
(`forward_head`) is untouched. The state file keeps the region and service, never a
credential, so a restarted proxy signs again; health says `targetAuth`
(`sigv4`, `basic` or `none`) and never shows a secret.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import re
import ssl
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mactl.capture.http1 import (
    HEAD_END,
    MAX_HEAD_BYTES,
    BodyFramer,
    Head,
    ProtocolError,
    header_list,
    parse_head,
    serialize_head,
)
from mactl.capture.log import LogWriter
from mactl.capture.record import Record, encode
from mactl.errors import ConfigError, MactlError
from mactl.sigv4 import CREDENTIALS_HINT, RequestSigner, SigningError, aws_credentials, sigv4_region, wire_target

MUTATING = frozenset({"PUT", "POST", "DELETE", "PATCH"})
_READ_ENDPOINT = re.compile(
    r"(^|/)(_search|_count|_mget|_msearch|_field_caps|_explain|_validate/query|_search/scroll"
    r"|_search/template|_msearch/template|_render/template|_termvectors|_mtermvectors|_analyze"
    r"|_pit|_search/point_in_time|_sql|_async_search)(/|$)"
)
_NO_BODY_STATUS = frozenset({204, 304})
# Not forwarded to a sigv4 target: the signature owns Host and auth, the body is re-framed.
_SIGNED_DROP = frozenset(
    {"host", "content-length", "transfer-encoding", "expect", "authorization", "proxy-authorization"}
)
SIGV4_SERVICES = ("es", "aoss")
_SIGNER_RETRY_S = 10.0  # a restarted proxy without credentials tries again at most this often


def is_capturable(method: str, path: str) -> bool:
    """Mutating method and not a read endpoint (`POST /idx/_search` is a read)."""
    if method not in MUTATING:
        return False
    return _READ_ENDPOINT.search(path.split("?", 1)[0]) is None


@dataclass
class Filters:
    """Requests matching any of these are forwarded but never recorded."""

    skip_headers: dict[str, re.Pattern[str]] = field(default_factory=dict)
    skip_paths: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def from_config(cls, skip_headers: dict[str, str], skip_paths: list[str]) -> Filters:
        return cls(
            {k.lower(): re.compile(v) for k, v in skip_headers.items()},
            [re.compile(p) for p in skip_paths],
        )

    def suppresses(self, path: str, headers: list[tuple[str, str]]) -> bool:
        if any(p.search(path) for p in self.skip_paths):
            return True
        for name, value in headers:
            pat = self.skip_headers.get(name.lower())
            if pat is not None and pat.search(value):
                return True
        return False


@dataclass
class Upstream:
    """Where forwarded requests go: scheme, host, port and an optional auth override."""

    url: str
    host: str
    port: int
    tls: bool
    insecure: bool = False
    authorization: str | None = None
    sigv4: tuple[str, str] | None = None  # (region, service): every request is signed
    signer: RequestSigner | None = None  # None with `sigv4` set: credentials not found (yet)
    signer_problem: str = ""
    signer_retry_at: float = 0.0

    @property
    def host_header(self) -> str:
        """The Host header a signed request carries (and signs): no port when it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.tls else 80) else f"{host}:{self.port}"

    @property
    def sigv4_doc(self) -> dict[str, str] | None:
        """Region and service, as health and the state file show them (never credentials)."""
        return {"region": self.sigv4[0], "service": self.sigv4[1]} if self.sigv4 else None

    @property
    def auth_kind(self) -> str:
        return "sigv4" if self.sigv4 else "basic" if self.authorization else "none"

    @classmethod
    def parse(cls, url: str, *, insecure: bool = False, authorization: str | None = None) -> Upstream:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        return cls(
            url=f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if tls else 80)}",
            host=parts.hostname,
            port=parts.port or (443 if tls else 80),
            tls=tls,
            insecure=insecure,
            authorization=authorization,
        )

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """Built once per upstream: loading the CA bundle costs milliseconds, too much to
        pay on every client connection."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


class CaptureProxy:
    """The proxy's state and its connection handler. Start with `serve()`."""

    def __init__(
        self,
        source: Upstream,
        writer: LogWriter | None,
        *,
        proxy_id: str,
        filters: Filters | None = None,
        log_description: dict[str, Any] | None = None,
        state_file: Path | None = None,
        capturing: bool = False,
    ) -> None:
        self.source = source
        self.target: Upstream | None = None
        self.route = "source"
        self.capturing = capturing
        self.writer = writer
        self.proxy_id = proxy_id
        self.filters = filters or Filters()
        self.log_description = log_description or {}
        self.state_file = state_file
        self.records_written = 0
        self.log_errors = 0
        self.requests = 0
        self.connections = 0
        self.started = time.time()
        self._boot = f"{int(self.started * 1000):x}"
        self._conn_ids = itertools.count(1)
        self._load_state()

    # ---------------------------------------------------------------- persisted flags
    def _load_state(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text())
        self.capturing = bool(data.get("capturing", self.capturing))
        if data.get("route") == "target" and data.get("target"):
            self.target = Upstream.parse(data["target"], insecure=bool(data.get("targetInsecure")))
            self.target.authorization = data.get("targetAuthorization")
            sigv4 = data.get("targetSigv4")
            if sigv4:
                self.target.sigv4 = (str(sigv4["region"]), str(sigv4.get("service") or "es"))
                try:
                    self.target.signer = self.new_signer(*self.target.sigv4)
                except MactlError as exc:  # answered 502 per request (and retried) until it resolves
                    self.target.signer_problem = exc.message
                    self.target.signer_retry_at = time.monotonic() + _SIGNER_RETRY_S
                    print(
                        f"mactl capture-proxy: routed to a sigv4 target, but {exc.message}", file=sys.stderr, flush=True
                    )
            self.route = "target"

    def _save_state(self) -> None:
        """Persist capture/route flags so a restarted proxy resumes what it was told."""
        if self.state_file is None:
            return
        data = {
            "capturing": self.capturing,
            "route": self.route,
            "target": self.target.url if self.target else None,
            "targetInsecure": self.target.insecure if self.target else False,
            "targetAuthorization": self.target.authorization if self.target else None,
            # region and service only: credentials come from the environment, never from here
            "targetSigv4": self.target.sigv4_doc if self.target else None,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.state_file)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "proxyId": self.proxy_id,
            "pid": os.getpid(),
            "capturing": self.capturing,
            "recording": self.capturing and self.route == "source" and self.writer is not None,
            "route": self.route,
            "source": self.source.url,
            "target": self.target.url if self.target else None,
            "targetAuth": self.target.auth_kind if self.target else "none",  # never the secret itself
            "targetSigv4": self.target.sigv4_doc if self.target else None,
            "recordsWritten": self.records_written,
            "logErrors": self.log_errors,
            "requests": self.requests,
            "connections": self.connections,
            "log": self.log_description,
            "uptimeSeconds": round(time.time() - self.started, 3),
        }

    # ---------------------------------------------------------------- sigv4
    def new_signer(self, region: str, service: str) -> RequestSigner:
        """A signer over this process's default AWS credential chain, checked by signing a
        probe request now (so role credentials are fetched here, not on the first client
        request). Raises `MactlError` naming the problem. Blocking: call it off the loop."""
        where = f"capture proxy {self.proxy_id} (pid {os.getpid()})"
        try:
            signer = RequestSigner(aws_credentials(where), region, service)
            signer.sign("GET", "https", "probe.invalid", "/", [], b"")
        except MactlError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore raises more than BotoCoreError
            raise SigningError(
                f"{where}: sigv4 auth could not load AWS credentials: {exc}", hint=CREDENTIALS_HINT
            ) from None
        return signer

    def _signer(self, upstream: Upstream) -> RequestSigner:
        """The upstream's signer; one that could not be made is tried again now and then."""
        if upstream.signer is not None:
            return upstream.signer
        assert upstream.sigv4 is not None
        now = time.monotonic()
        if now >= upstream.signer_retry_at:
            upstream.signer_retry_at = now + _SIGNER_RETRY_S
            try:
                upstream.signer = self.new_signer(*upstream.sigv4)
                return upstream.signer
            except MactlError as exc:
                upstream.signer_problem = exc.message
        raise SigningError(upstream.signer_problem or "sigv4: no AWS credentials", hint=CREDENTIALS_HINT)

    def signed_request(self, req: _Request, upstream: Upstream) -> bytes:
        """The bytes to send a sigv4 upstream for `req`: exactly what was signed (target in
        `wire_target` form, Host without a default port, the client's own Authorization
        and X-Amz-* headers dropped, the body de-chunked with a Content-Length)."""
        signer = self._signer(upstream)
        version = req.head.start_line.rsplit(" ", 1)[1]
        wire = wire_target(req.target)
        headers = [
            (k, v)
            for k, v in header_list(req.head.raw)
            if (low := k.lower()) not in _SIGNED_DROP and not low.startswith("x-amz-")
        ]
        body = req.body
        host = upstream.host_header
        signature = signer.sign(req.method, "https" if upstream.tls else "http", host, wire, headers, body)
        out = [("Host", host), *headers]
        if body or req.head.chunked or req.head.content_length is not None:
            out.append(("Content-Length", str(len(body))))
        out += signature
        return serialize_head(f"{req.method} {wire} {version}", out) + body

    async def _route_signed(self, upstream: Upstream) -> tuple[int, dict[str, Any]]:
        """Finish a route to a sigv4 target: credentials are resolved in a worker thread
        (the chain may ask a metadata endpoint), the route changes only if they are found."""
        assert upstream.sigv4 is not None
        loop = asyncio.get_running_loop()
        try:
            upstream.signer = await loop.run_in_executor(None, self.new_signer, *upstream.sigv4)
        except MactlError as exc:
            return 400, {
                "error": f"route to target: {exc.message}",
                "hint": f"{exc.hint or CREDENTIALS_HINT}, in the environment the proxy was started with",
            }
        self.target = upstream
        self.route = "target"
        self._save_state()
        return 200, self.health()

    # ---------------------------------------------------------------- control plane
    def control(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any]] | Any:
        """A control request's (status, document); a route to a sigv4 target returns a
        coroutine giving them instead (it looks up AWS credentials off the event loop)."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if path == "/__mactl/health" and method in ("GET", "HEAD"):
            return 200, self.health()
        if path in ("/__mactl/capture/start", "/__mactl/capture/stop") and method == "POST":
            self.capturing = path.endswith("start")
            self._save_state()
            return 200, self.health()
        if path == "/__mactl/route" and method == "POST":
            try:
                options = json.loads(body) if body.strip() else {}
            except json.JSONDecodeError:
                return 400, {"error": "route: body must be JSON"}
            to = query.get("to") or options.get("to")
            if to == "source":
                self.route = "source"
            elif to == "target":
                url = query.get("url") or options.get("url") or (self.target.url if self.target else None)
                if not url:
                    return 400, {"error": "route to target: no target url given (?url= or body.url)"}
                try:
                    upstream = Upstream.parse(
                        url,
                        insecure=bool(options.get("insecure")),
                        authorization=options.get("authorization"),
                    )
                except ValueError as exc:
                    return 400, {"error": f"route: {exc}"}
                sigv4 = options.get("sigv4")
                if sigv4 is not None:
                    if upstream.authorization:
                        return 400, {"error": "route: give `authorization` or `sigv4`, not both"}
                    if not isinstance(sigv4, dict):
                        return 400, {"error": "route: `sigv4` must be an object {region, service}"}
                    try:
                        region = sigv4_region(sigv4, "route: sigv4")
                    except ConfigError as exc:
                        return 400, {"error": exc.message}
                    service = str(sigv4.get("service") or "es")
                    if service not in SIGV4_SERVICES:
                        return 400, {"error": f"route: sigv4.service: expected es or aoss, got {service!r}"}
                    upstream.sigv4 = (region, service)
                    return self._route_signed(upstream)
                self.target = upstream
                self.route = "target"
            else:
                return 400, {"error": "route: `to` must be `source` or `target`"}
            self._save_state()
            return 200, self.health()
        return 404, {"error": f"no control endpoint {method} {parts.path}"}

    # ---------------------------------------------------------------- data plane
    def upstream_for_next_request(self) -> Upstream:
        return self.target if (self.route == "target" and self.target) else self.source

    def records_now(self, upstream: Upstream) -> bool:
        """Whether a capturable request answered by `upstream` is recorded right now."""
        return self.capturing and upstream is self.source and self.writer is not None

    def forward_head(self, head: Head, upstream: Upstream, *, changed: bool) -> bytes:
        """The request head to send upstream: the client's bytes untouched on the plain
        source (the fast path), otherwise re-serialised with Host and auth rewritten."""
        if not changed and upstream is self.source and not upstream.tls and not upstream.authorization:
            return head.raw
        out: list[tuple[str, str]] = []
        for k, v in header_list(head.raw):
            low = k.lower()
            if low == "host":
                v = f"{upstream.host}:{upstream.port}"
            elif low == "expect" or (low == "authorization" and upstream.authorization):
                continue
            out.append((k, v))
        if upstream.authorization:
            out.append(("Authorization", upstream.authorization))
        return serialize_head(head.start_line, out)

    def new_connection_id(self) -> str:
        self.connections += 1
        return f"{self.proxy_id}.{self._boot}.{next(self._conn_ids)}"

    def note_log_error(self, exc: BaseException) -> None:
        self.log_errors += 1
        print(f"mactl capture-proxy: capture log append failed: {exc}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class _Request:
    """One complete client request waiting for, or being, forwarded."""

    head: Head
    method: str
    target: str
    raw_body: bytes  # as framed on the wire (forwarded as is)
    body: bytes  # de-chunked (recorded)
    time: float
    capturable: bool
    client_close: bool
    head_changed: bool  # the Expect header was answered here, so the head is rewritten
    upstream: Upstream | None = None
    retried: bool = False


class _UpstreamConnection(asyncio.Protocol):
    """The proxy's connection to the source (or target) for one client connection."""

    __slots__ = ("answered", "owner", "transport", "upstream")

    def __init__(self, owner: _ClientConnection, upstream: Upstream) -> None:
        self.owner = owner
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.answered = 0  # complete responses read on this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.owner.upstream_data(self, data)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.upstream_lost(self)

    def pause_writing(self) -> None:
        self.owner.pause_client_reading("upstream-busy")

    def resume_writing(self) -> None:
        self.owner.resume_client_reading("upstream-busy")


_MAX_QUEUED_REQUESTS = 32
# Connecting only: once connected, an answer may legitimately take as long as the source
# needs (a forcemerge, a big _delete_by_query), so there is no timeout on answers.
CONNECT_TIMEOUT_S = 10.0
_STATUS_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}


class _ClientConnection(asyncio.Protocol):
    """One client connection: parses requests as they arrive, forwards them one at a time
    (so pipelined answers stay in order), streams reads back as the source sends them, and
    holds the answer to a recorded write until the capture log has it.

    Callbacks instead of coroutines on purpose: a read costs two `data_received` calls and
    two `write`s, with no task switch, which is most of the proxy's overhead budget.
    """

    def __init__(self, proxy: CaptureProxy) -> None:
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn_id = ""
        self.seq = 0
        self.closed = False
        self._in = bytearray()
        self._req_head: Head | None = None
        self._req_framer: BodyFramer | None = None
        self._req_time = 0.0
        self._req_scanned = 0
        self._expect_answered = False
        self._client_eof = False  # the client shut down its sending side
        self._bad_request: str | None = None  # a malformed request, answered after those before it
        self._queue: deque[_Request] = deque()
        self._paused: set[str] = set()
        self._up: _UpstreamConnection | None = None
        self._inflight: _Request | None = None
        self._reset_response()

    def _reset_response(self) -> None:
        self._resp_buf = bytearray()
        self._resp_head: Head | None = None
        self._resp_framer: BodyFramer | None = None
        self._resp_record = False
        self._resp_parts: list[bytes] = []
        self._resp_started = False  # bytes of this answer already went to the client
        self._awaiting_log = False

    # ------------------------------------------------------------ client side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn_id = self.proxy.new_connection_id()

    def data_received(self, data: bytes) -> None:
        if self.closed or self._bad_request is not None:
            return
        if self._in:  # the rest of a message that began in an earlier arrival
            self._in += data
            buf: bytes | bytearray = self._in
        else:
            buf = data
        try:
            used = self._parse_requests(buf)
        except ProtocolError as exc:
            # Requests before the malformed one are already on their way (a write may have
            # reached the source): answer (and record) them first, then the 400.
            self._bad_request = str(exc)
            self.pause_client_reading("bad-request")
            self._pump()
            return
        if buf is self._in:
            del self._in[:used]
        elif used < len(buf):
            self._in += buf[used:]

    def eof_received(self) -> bool:
        # A half-closed client may still be waiting for answers to requests it sent;
        # `_pump` closes the connection once they are all out.
        self._client_eof = True
        return bool(self._inflight or self._queue)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._queue.clear()
        if self._up is not None and self._up.transport is not None:
            self._up.transport.close()
        self._up = None

    def pause_writing(self) -> None:  # the client reads slower than the source answers
        if self._up is not None and self._up.transport is not None:
            self._up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._up is not None and self._up.transport is not None:
            self._up.transport.resume_reading()

    def pause_client_reading(self, reason: str) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused.add(reason)

    def resume_client_reading(self, reason: str) -> None:
        self._paused.discard(reason)
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _parse_requests(self, buf: bytes | bytearray) -> int:
        """Queue every complete request in `buf`; return how many bytes were used (the
        rest, an incomplete message, is kept for the next arrival). A body is framed
        incrementally: `_req_scanned` says how much of it the framer has already seen."""
        pos = 0
        while not self.closed:
            if self._req_head is None:
                while buf.startswith(b"\r\n", pos):  # stray CRLF between pipelined requests
                    pos += 2
                end = buf.find(HEAD_END, pos)
                if end < 0:
                    if len(buf) - pos > MAX_HEAD_BYTES:
                        raise ProtocolError("request head too large")
                    return pos
                head = parse_head(bytes(buf[pos : end + 4]))
                if head.start_line.count(" ") < 2 or not head.start_line.rsplit(" ", 1)[1].startswith("HTTP/1."):
                    raise ProtocolError(f"bad request line {head.start_line[:80]!r}")
                pos = end + 4
                self._req_head = head
                self._req_time = time.time()
                self._req_framer = BodyFramer(head, until_eof=False, collect=head.chunked)
                self._req_scanned = 0
            head, framer = self._req_head, self._req_framer
            assert framer is not None
            end = pos if framer.done else framer.feed(buf, pos + self._req_scanned)
            if not framer.done:
                self._req_scanned = end - pos
                if head.expect_continue and self._inflight is None and not self._queue:
                    self._send_continue()  # else `_pump`, once the answers before it are out
                return pos  # keep the partial body from its first byte
            raw_body = bytes(buf[pos:end])
            pos = end
            self._req_head = self._req_framer = None
            self._queue_request(head, raw_body, bytes(framer.body) if head.chunked else raw_body)
        return len(buf)

    def _send_continue(self) -> None:
        head = self._req_head
        if head is None or not head.expect_continue or self.transport is None or self.closed:
            return
        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        head.expect_continue = False  # answered here, once
        self._expect_answered = True

    def _queue_request(self, head: Head, raw_body: bytes, body: bytes) -> None:
        method, target, version = head.start_line.split(" ", 2)
        conn = head.connection
        client_close = "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn)
        capturable = is_capturable(method, target)
        if capturable and (self.proxy.filters.skip_paths or self.proxy.filters.skip_headers):
            capturable = not self.proxy.filters.suppresses(target, header_list(head.raw))
        changed, self._expect_answered = self._expect_answered, False
        self.proxy.requests += 1
        self._queue.append(
            _Request(head, method, target, raw_body, body, self._req_time, capturable, client_close, changed)
        )
        if len(self._queue) >= _MAX_QUEUED_REQUESTS:
            self.pause_client_reading("queue")
        if self._inflight is None:
            self._pump()

    def _pump(self) -> None:
        """Start the next queued request if none is in flight."""
        while self._inflight is None and self._queue and not self.closed:
            req = self._queue.popleft()
            if self._paused and len(self._queue) < _MAX_QUEUED_REQUESTS // 2:
                self.resume_client_reading("queue")
            if req.target.startswith("/__mactl/"):
                answer = self.proxy.control(req.method, req.target, req.body)
                if isinstance(answer, tuple):
                    self._answer(req, *answer)
                else:  # answered once AWS credentials are looked up; later requests wait
                    self._inflight = req
                    self._drop_upstream()  # nothing may arrive for it from an idle upstream
                    self.loop.create_task(self._answer_later(req, answer))
                continue
            self._inflight = req
            self._send(req)
        if self._inflight is None and not self._queue and not self.closed:
            # every answer so far is out: what was waiting for that can happen now
            if self._bad_request is not None:
                self._fail(400, self._bad_request)
            elif self._client_eof:
                self._close_client()
            else:
                self._send_continue()

    def _answer(self, req: _Request, status: int, payload: dict[str, Any]) -> None:
        """An answer of the proxy's own to `req` (the connection stays open unless asked)."""
        out = json.dumps(payload).encode()
        self._write_simple(status, out if req.method != "HEAD" else b"", len(out), close=req.client_close)
        if req.client_close:
            self._close_client()

    async def _answer_later(self, req: _Request, pending: Any) -> None:
        try:
            status, payload = await pending
        except Exception as exc:  # noqa: BLE001 - a control call must not take the proxy down
            status, payload = 500, {"error": f"mactl proxy: {type(exc).__name__}: {exc}"}
        if self.closed or self._inflight is not req:
            return
        self._inflight = None
        self._answer(req, status, payload)
        self._pump()

    def _send(self, req: _Request) -> None:
        upstream = self.proxy.upstream_for_next_request()
        req.upstream = upstream
        up = self._up
        if up is not None and up.upstream is not upstream:
            self._drop_upstream()
            up = None
        if up is None:
            self.loop.create_task(self._connect_and_send(upstream, req))
            return
        assert up.transport is not None
        if upstream.sigv4 is None:
            up.transport.write(self.proxy.forward_head(req.head, upstream, changed=req.head_changed) + req.raw_body)
            return
        try:  # signed now, so a retry on a fresh connection gets a fresh X-Amz-Date
            data = self.proxy.signed_request(req, upstream)
        except Exception as exc:  # noqa: BLE001 - one request fails, not the proxy
            message = exc.message if isinstance(exc, MactlError) else f"{type(exc).__name__}: {exc}"
            self._inflight = None
            self._answer(req, 502, {"error": f"mactl proxy: could not sign the request for the target: {message}"})
            if not self.closed:
                self.loop.call_soon(self._pump)  # `_pump` may not be the caller
            return
        up.transport.write(data)

    async def _connect_and_send(self, upstream: Upstream, req: _Request) -> None:
        try:
            _, proto = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _UpstreamConnection(self, upstream),
                    upstream.host,
                    upstream.port,
                    ssl=upstream.ssl_context,
                ),
                CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError) as exc:
            reason = str(exc) or f"no connection to {upstream.host}:{upstream.port} within {CONNECT_TIMEOUT_S:g} s"
            self._fail(502, f"upstream unreachable: {reason}")
            return
        if self.closed or self._inflight is not req:
            proto.transport.close()  # type: ignore[union-attr]
            return
        self._up = proto
        self._send(req)

    # ------------------------------------------------------------ upstream side
    def upstream_data(self, up: _UpstreamConnection, data: bytes) -> None:
        if up is not self._up or self.closed:
            return
        req = self._inflight
        if req is None or self._awaiting_log:
            self._drop_upstream()  # bytes nobody asked for: this connection is unusable
            return
        try:
            self._consume_response(req, data)
        except ProtocolError as exc:
            self._drop_upstream()
            self._upstream_broke(f"bad answer from upstream: {exc}")

    def _consume_response(self, req: _Request, data: bytes) -> None:
        """Frame the answer to `req` as it arrives. A read's bytes go to the client in one
        write per arrival (head and body together); a recorded write's are held."""
        if self._resp_head is None and self._resp_buf:  # a head split across arrivals
            self._resp_buf += data
            data = bytes(self._resp_buf)
            self._resp_buf.clear()
        pos = start = 0
        while self._resp_head is None:
            end = data.find(HEAD_END, pos)
            if end < 0:
                if len(data) - pos > MAX_HEAD_BYTES:
                    raise ProtocolError("response head too large")
                self._resp_buf += data[pos:]
                return
            head = parse_head(data[pos : end + 4])
            line = head.start_line
            if not line.startswith("HTTP/1.") or len(line) < 12 or not line[9:12].isdigit():
                raise ProtocolError(f"upstream sent {line[:60]!r}")
            status = int(line[9:12])
            pos = end + 4
            if 100 <= status < 200 and status != 101:
                self.transport.write(head.raw)  # type: ignore[union-attr]  # interim answer: pass it on
                start = pos
                continue
            no_body = req.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
            assert req.upstream is not None
            self._resp_head = head
            self._resp_record = req.capturable and self.proxy.records_now(req.upstream)
            self._resp_framer = BodyFramer(None if no_body else head, until_eof=True, collect=self._resp_record)
        framer = self._resp_framer
        assert framer is not None
        end = pos if framer.done else framer.feed(data, pos)
        piece = data if (start == 0 and end == len(data)) else data[start:end]
        if piece:
            if self._resp_record:
                self._resp_parts.append(piece)
            else:
                self._resp_started = True
                self.transport.write(piece)  # type: ignore[union-attr]
        if not framer.done:
            return
        if end < len(data):
            raise ProtocolError("bytes after the end of an answer")
        self._response_complete(req)

    def _response_complete(self, req: _Request) -> None:
        head, framer = self._resp_head, self._resp_framer
        assert head is not None and framer is not None
        up = self._up
        if up is not None:
            up.answered += 1
        if "close" in head.connection or framer.until_eof:
            self._drop_upstream()
        if not self._resp_record:
            self._finish(req, None, close_client=framer.until_eof)
            return
        raw = b"".join(self._resp_parts)
        record = Record(
            connection_id=self.conn_id,
            seq=self.seq,
            request_time=req.time,
            response_time=time.time(),
            method=req.method,
            path=req.target,
            headers=header_list(req.head.raw),
            body=req.body,
            status=int(head.start_line[9:12]),
            response_headers=header_list(head.raw),
            response_body=bytes(framer.body),
            proxy_id=self.proxy.proxy_id,
        )
        self.seq += 1
        writer = self.proxy.writer
        assert writer is not None
        close_client = framer.until_eof
        try:
            payload = encode(record)
            stored = writer.append_nowait(record.connection_id, payload)
            if stored is None:
                future = writer.submit(record.connection_id, payload)
        except Exception as exc:  # noqa: BLE001 - the source took the write: answer the client anyway
            self.proxy.note_log_error(exc)
            self._finish(req, raw, close_client=close_client)
            return
        if stored is not None:
            self.proxy.records_written += 1
            self._finish(req, raw, close_client=close_client)
            return
        self._awaiting_log = True

        def on_stored(fut: Any) -> None:  # on the log's thread
            self.loop.call_soon_threadsafe(self._stored, fut, req, raw, close_client)

        future.add_done_callback(on_stored)

    def _stored(self, fut: Any, req: _Request, raw: bytes, close_client: bool) -> None:
        exc = fut.exception()
        if exc is None:
            self.proxy.records_written += 1
        else:
            self.proxy.note_log_error(exc)
        self._finish(req, raw, close_client=close_client)

    def _finish(self, req: _Request, raw: bytes | None, *, close_client: bool) -> None:
        """The answer to `req` is complete (and recorded if it had to be): send what is
        held back, then start the next request."""
        if self.closed:
            return
        if raw is not None:
            self.transport.write(raw)  # type: ignore[union-attr]
        self._inflight = None
        self._reset_response()
        if req.client_close or close_client:
            self._close_client()
            return
        self._pump()

    def upstream_lost(self, up: _UpstreamConnection) -> None:
        if up is not self._up:
            return
        self._up = None
        self.resume_client_reading("upstream-busy")  # its full write buffer went with it
        req = self._inflight
        if req is None or self.closed or self._awaiting_log:
            return
        framer = self._resp_framer
        if framer is not None and framer.until_eof and self._resp_head is not None:
            framer.finish_at_eof()
            self._response_complete(req)
            return
        nothing_yet = self._resp_head is None and not self._resp_buf
        if nothing_yet and up.answered > 0 and not req.retried:
            # a kept-alive connection the source closed just as we reused it: retry once
            req.retried = True
            self._send(req)
            return
        self._upstream_broke("upstream closed the connection")

    def _upstream_broke(self, message: str) -> None:
        if self._resp_started:
            self._close_client()  # part of the answer went out: only closing tells the client
        else:
            self._fail(502, message)

    def _drop_upstream(self) -> None:
        up, self._up = self._up, None
        if up is not None and up.transport is not None:
            up.transport.close()
        self.resume_client_reading("upstream-busy")  # a pause its full write buffer caused ends with it

    # ------------------------------------------------------------ answers of our own
    def _write_simple(self, status: int, body: bytes, length: int, *, close: bool) -> None:
        headers = [("content-type", "application/json"), ("content-length", str(length))]
        if close:
            headers.append(("connection", "close"))
        reason = _STATUS_REASONS.get(status, "OK")
        self.transport.write(serialize_head(f"HTTP/1.1 {status} {reason}", headers) + body)  # type: ignore[union-attr]

    def _fail(self, status: int, message: str) -> None:
        if self.closed or self.transport is None:
            return
        out = json.dumps({"error": f"mactl proxy: {message}"}).encode()
        self._write_simple(status, out, len(out), close=True)
        self._close_client()

    def _close_client(self) -> None:
        self._queue.clear()
        self._drop_upstream()
        if self.transport is not None and not self.closed:
            self.transport.close()  # flushes what is buffered first
        self.closed = True


async def serve(proxy: CaptureProxy, host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _ClientConnection(proxy), host, port, reuse_address=True)
    async with server:
        if ready is not None:
            ready.set()
        await server.serve_forever()
