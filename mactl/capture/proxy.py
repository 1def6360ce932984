"""The capture proxy: an asyncio HTTP/1.1 reverse proxy in front of the source.

Every request is forwarded. A mutating request (PUT/POST/DELETE/PATCH that is not a
read such as `POST _search`) is recorded to the capture log together with the source's
response *before* the response goes back to the client, so a client that saw its write
acknowledged knows it is in the log. Reads are answered as soon as the source answers.

Each client connection gets its own upstream connection; requests on it are handled one
at a time in arrival order, which keeps pipelined requests (and their responses) in
order. Bodies may be Content-Length or chunked; they are forwarded as received and
recorded de-chunked.

Control endpoints (never forwarded, never captured) live under `/__mactl/`:
`GET health`, `POST capture/start`, `POST capture/stop`, `POST route?to=target|source`
(body `{"url": ..., "authorization": ...}` names the target). The proxy starts NOT
capturing: the capture stage signals it once every proxy is up (the seed's "signal
proxy to write"). While routed to the target it does not record: those writes never
reached the source, so they have nothing to replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mactl.capture.log import LogWriter
from mactl.capture.record import Record, encode

MUTATING = frozenset({"PUT", "POST", "DELETE", "PATCH"})
_READ_ENDPOINT = re.compile(
    r"(^|/)(_search|_count|_mget|_msearch|_field_caps|_explain|_validate/query|_search/scroll"
    r"|_search/template|_msearch/template|_render/template|_termvectors|_mtermvectors|_analyze"
    r"|_pit|_search/point_in_time|_sql|_async_search)(/|$)"
)
_NO_BODY_STATUS = frozenset({204, 304})
_HEAD_LIMIT = 256 * 1024


class ProtocolError(Exception):
    """The client or the upstream spoke something that is not HTTP/1.x."""


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

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass
class Message:
    """A parsed request or response: the head, the raw bytes to forward, the body."""

    start_line: str
    headers: list[tuple[str, str]]
    raw_body: bytes
    body: bytes
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, str, list[tuple[str, str]]] | None:
    """(the head's bytes as received, start line, headers), or None at a clean end."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError("connection closed inside a message head") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError("message head too large") from None
    lines = raw[:-4].decode("latin-1").split("\r\n")
    while lines and not lines[0]:  # tolerate stray CRLF between pipelined requests
        lines.pop(0)
    if not lines:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line[:60]!r}")
        headers.append((name.strip(), value.strip()))
    return raw.lstrip(b"\r\n"), lines[0], headers


async def _read_body(
    reader: asyncio.StreamReader, headers: list[tuple[str, str]], *, until_eof: bool
) -> tuple[bytes, bytes]:
    """(raw bytes as framed on the wire, de-chunked body)."""
    te = next((v for k, v in headers if k.lower() == "transfer-encoding"), "")
    if "chunked" in te.lower():
        raw = bytearray()
        body = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            raw += line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    raw += trailer
                    if trailer == b"\r\n":
                        return bytes(raw), bytes(body)
            chunk = await reader.readexactly(size + 2)
            raw += chunk
            body += chunk[:-2]
    length = next((v for k, v in headers if k.lower() == "content-length"), None)
    if length is not None:
        data = await reader.readexactly(int(length))
        return data, data
    if until_eof:
        data = await reader.read()
        return data, data
    return b"", b""


def _serialize_head(start_line: str, headers: list[tuple[str, str]]) -> bytes:
    return (start_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


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
            "recordsWritten": self.records_written,
            "logErrors": self.log_errors,
            "requests": self.requests,
            "connections": self.connections,
            "log": self.log_description,
            "uptimeSeconds": round(time.time() - self.started, 3),
        }

    # ---------------------------------------------------------------- control plane
    def _control(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
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
                    self.target = Upstream.parse(
                        url,
                        insecure=bool(options.get("insecure")),
                        authorization=options.get("authorization"),
                    )
                except ValueError as exc:
                    return 400, {"error": f"route: {exc}"}
                self.route = "target"
            else:
                return 400, {"error": "route: `to` must be `source` or `target`"}
            self._save_state()
            return 200, self.health()
        return 404, {"error": f"no control endpoint {method} {parts.path}"}

    # ---------------------------------------------------------------- data plane
    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        conn_id = f"{self.proxy_id}.{self._boot}.{next(self._conn_ids)}"
        self.connections += 1
        up_r: asyncio.StreamReader | None = None
        up_w: asyncio.StreamWriter | None = None
        up_key: str | None = None
        seq = 0
        try:
            while True:
                head = await _read_head(client_r)
                if head is None:
                    return
                t_request = time.time()
                raw_head, start_line, headers = head
                try:
                    method, target, version = start_line.split(" ", 2)
                except ValueError:
                    raise ProtocolError(f"bad request line {start_line[:80]!r}") from None
                expect = next((v for k, v in headers if k.lower() == "expect"), None)
                if expect and expect.lower() == "100-continue":
                    client_w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                    raw_head = b""  # changed: must be re-serialised
                raw_body, body = await _read_body(client_r, headers, until_eof=False)
                conn_hdr = (next((v for k, v in headers if k.lower() == "connection"), "") or "").lower()
                client_close = "close" in conn_hdr or (version == "HTTP/1.0" and "keep-alive" not in conn_hdr)
                self.requests += 1

                if target.startswith("/__mactl/"):
                    status, payload = self._control(method, target, body)
                    out = json.dumps(payload).encode()
                    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
                    client_w.write(
                        _serialize_head(
                            f"HTTP/1.1 {status} {reason}",
                            [("content-type", "application/json"), ("content-length", str(len(out)))],
                        )
                        + (b"" if method == "HEAD" else out)
                    )
                    await client_w.drain()
                    if client_close:
                        return
                    continue

                upstream = self.target if (self.route == "target" and self.target) else self.source
                if up_key != upstream.url or up_w is None or up_w.is_closing():
                    if up_w is not None:
                        up_w.close()
                    up_r, up_w = await self._connect(upstream)
                    up_key = upstream.url
                assert up_r is not None and up_w is not None
                if raw_head and upstream is self.source and not upstream.tls and not upstream.authorization:
                    out_head = raw_head  # plain-HTTP source: forward the head untouched (fast path)
                else:
                    out_head = _serialize_head(start_line, self._forward_headers(headers, upstream))
                try:
                    up_w.write(out_head + raw_body)
                    await _drain(up_w)
                    resp = await self._read_response(up_r, method, client_w)
                except (ConnectionError, asyncio.IncompleteReadError, ProtocolError):
                    # a kept-alive upstream connection may have been closed under us: retry once
                    up_w.close()
                    up_r, up_w = await self._connect(upstream)
                    up_w.write(out_head + raw_body)
                    await up_w.drain()
                    resp = await self._read_response(up_r, method, client_w)
                t_response = time.time()

                record = (
                    self.capturing
                    and upstream is self.source
                    and self.writer is not None
                    and is_capturable(method, target)
                    and not self.filters.suppresses(target, headers)
                )
                if record:
                    await self._record(
                        Record(
                            connection_id=conn_id,
                            seq=seq,
                            request_time=t_request,
                            response_time=t_response,
                            method=method,
                            path=target,
                            headers=headers,
                            body=body,
                            status=int(resp.start_line.split(" ", 2)[1]),
                            response_headers=resp.headers,
                            response_body=resp.body,
                            proxy_id=self.proxy_id,
                        )
                    )
                    seq += 1
                client_w.write(resp.raw_head + resp.raw_body)
                await _drain(client_w)
                resp_conn = (resp.header("connection") or "").lower()
                if "close" in resp_conn:
                    up_w.close()
                    up_w = None
                if client_close or (resp.header("content-length") is None
                                    and "chunked" not in (resp.header("transfer-encoding") or "").lower()
                                    and method != "HEAD" and _has_body(resp.start_line)):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except ProtocolError as exc:
            with contextlib.suppress(Exception):
                msg = json.dumps({"error": f"mactl proxy: {exc}"}).encode()
                client_w.write(
                    _serialize_head(
                        "HTTP/1.1 502 Bad Gateway",
                        [("content-type", "application/json"), ("content-length", str(len(msg))),
                         ("connection", "close")],
                    )
                    + msg
                )
                await client_w.drain()
        except OSError as exc:  # upstream unreachable
            with contextlib.suppress(Exception):
                msg = json.dumps({"error": f"mactl proxy: upstream unreachable: {exc}"}).encode()
                client_w.write(
                    _serialize_head(
                        "HTTP/1.1 502 Bad Gateway",
                        [("content-type", "application/json"), ("content-length", str(len(msg))),
                         ("connection", "close")],
                    )
                    + msg
                )
                await client_w.drain()
        finally:
            if up_w is not None:
                up_w.close()
            client_w.close()

    async def _connect(self, upstream: Upstream) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            upstream.host, upstream.port, ssl=upstream.ssl_context(), limit=_HEAD_LIMIT
        )

    def _forward_headers(self, headers: list[tuple[str, str]], upstream: Upstream) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for k, v in headers:
            low = k.lower()
            if low == "host":
                v = f"{upstream.host}:{upstream.port}"
            elif low == "authorization" and upstream.authorization:
                continue
            out.append((k, v))
        if upstream.authorization:
            out.append(("Authorization", upstream.authorization))
        return out

    async def _read_response(
        self, up_r: asyncio.StreamReader, method: str, client_w: asyncio.StreamWriter
    ) -> Message:
        while True:
            head = await _read_head(up_r)
            if head is None:
                raise ConnectionResetError("upstream closed the connection")
            raw_head, start_line, headers = head
            if not start_line.startswith("HTTP/1."):
                raise ProtocolError(f"upstream sent {start_line[:60]!r}")
            status = int(start_line.split(" ", 2)[1])
            if 100 <= status < 200 and status != 101:
                client_w.write(raw_head)  # interim: pass through
                continue
            if method == "HEAD" or status in _NO_BODY_STATUS or status < 200:
                return Message(start_line, headers, b"", b"", raw_head)
            raw, body = await _read_body(up_r, headers, until_eof=True)
            return Message(start_line, headers, raw, body, raw_head)

    async def _record(self, rec: Record) -> None:
        try:
            fut = self.writer.submit(rec.connection_id, encode(rec))  # type: ignore[union-attr]
            await asyncio.wrap_future(fut)
            self.records_written += 1
        except Exception as exc:  # noqa: BLE001 - the client's write already happened: answer it
            self.log_errors += 1
            print(f"mactl capture-proxy: capture log append failed: {exc}", file=sys.stderr, flush=True)


async def _drain(writer: asyncio.StreamWriter) -> None:
    """Wait for the socket only when its buffer is large: most answers fit the kernel
    buffer at once, and skipping the await saves a scheduling round per request."""
    if writer.transport.get_write_buffer_size() > 256 * 1024:
        await writer.drain()
    elif writer.is_closing():
        raise ConnectionResetError("peer closed the connection")


def _has_body(start_line: str) -> bool:
    status = int(start_line.split(" ", 2)[1])
    return status >= 200 and status not in _NO_BODY_STATUS


async def serve(proxy: CaptureProxy, host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled."""
    server = await asyncio.start_server(proxy.handle, host, port, limit=_HEAD_LIMIT, reuse_address=True)
    async with server:
        if ready is not None:
            ready.set()
        await server.serve_forever()
