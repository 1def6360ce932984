"""The capture proxy on the wire: raw sockets against the real ES 7.10.2 and against a
tiny scripted upstream (for misbehaviour Elasticsearch never shows).

Every client here is a raw socket so the tests control exactly how bytes are split
across TCP writes and how fast answers are read, and every answer is parsed by the
small independent HTTP reader below (not by `mactl.capture.http1`, the code under test).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import socket
import struct
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
from cap_helpers import free_port, read_records, start_proxy  # type: ignore[import-not-found]

from mactl.capture import proxy as proxy_mod

# --------------------------------------------------------------------------- helpers


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def _es(url: str, method: str, path: str, body: bytes | None = None, ctype: str = "application/json") -> Any:
    req = urllib.request.Request(url + path, data=body, method=method, headers={"content-type": ctype})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@dataclass
class Response:
    status: int
    head: bytes  # the raw head, as received
    headers: list[tuple[str, str]]
    body: bytes  # de-chunked
    raw_body: bytes  # as it came over the wire
    framing: str  # "content-length" | "chunked" | "eof" | "none"
    chunk_sizes: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A raw HTTP/1.1 client connection with its own (independent) response parser."""

    def __init__(self, port: int, *, timeout: float = 15, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        self.recv_size = 65536
        self.recv_delay = 0.0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_pieces(self, data: bytes, cuts: list[int], delay: float = 0.001) -> None:
        """Send `data` in several TCP writes, cut at the given offsets."""
        start = 0
        for cut in sorted(set(cuts)) + [len(data)]:
            if start < cut <= len(data):
                self.sock.sendall(data[start:cut])
                start = cut
                if delay:
                    time.sleep(delay)

    def _fill(self) -> None:
        if self.recv_delay:
            time.sleep(self.recv_delay)
        data = self.sock.recv(self.recv_size)
        if not data:
            raise EOFError("connection closed by the proxy")
        self.buf += data

    def _line(self) -> bytes:
        while (nl := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:nl])
        del self.buf[: nl + 2]
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def response(self, method: str = "GET", *, interim: bool = False) -> Response:
        """Read the next response. 1xx answers are skipped unless `interim`."""
        while True:
            while (end := self.buf.find(b"\r\n\r\n")) < 0:
                self._fill()
            head = bytes(self.buf[: end + 4])
            del self.buf[: end + 4]
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
            resp = Response(status, head, headers, b"", b"", "none")
            if 100 <= status < 200:
                if interim:
                    return resp
                continue
            break
        te = (resp.header("transfer-encoding") or "").lower()
        if method == "HEAD" or status in (204, 304):
            return resp
        if "chunked" in te:
            resp.framing = "chunked"
            raw = bytearray()
            body = bytearray()
            while True:
                line = self._line()
                raw += line + b"\r\n"
                size = int(line.split(b";")[0], 16)
                resp.chunk_sizes.append(size)
                if size == 0:
                    while (t := self._line()) != b"":
                        raw += t + b"\r\n"
                    raw += b"\r\n"
                    break
                data = self._exact(size + 2)
                assert data.endswith(b"\r\n")
                raw += data
                body += data[:-2]
            resp.raw_body, resp.body = bytes(raw), bytes(body)
        elif (length := resp.header("content-length")) is not None:
            resp.framing = "content-length"
            resp.body = resp.raw_body = self._exact(int(length))
        else:
            resp.framing = "eof"
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            resp.body = resp.raw_body = bytes(self.buf)
            self.buf.clear()
        return resp

    def closed_by_peer(self, timeout: float = 5) -> bool:
        """True when the other side closes within `timeout` with nothing more sent."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def _request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    hdrs = {"Host": "cap-test", **(headers or {})}
    if body and "Transfer-Encoding" not in hdrs:
        hdrs.setdefault("Content-Length", str(len(body)))
        hdrs.setdefault("Content-Type", "application/json")
    return (
        f"{method} {path} HTTP/1.1\r\n".encode()
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in hdrs.items())
        + b"\r\n"
        + body
    )


def _chunk(data: bytes, sizes: list[int], ext_every: int = 3) -> tuple[bytes, list[int]]:
    """Chunked-encode `data` with chunk sizes cycling through `sizes`; returns the wire
    bytes and, for each chunk, the offset of its size line (where a cut is awkward)."""
    out = bytearray()
    size_lines = []
    pos = i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        part = data[pos : pos + n]
        size_lines.append(len(out))
        out += b"%x" % len(part) + (b";ext=%d" % i if i % ext_every == 0 else b"") + b"\r\n" + part + b"\r\n"
        pos += n
        i += 1
    size_lines.append(len(out))
    out += b"0\r\n\r\n"
    return bytes(out), size_lines


@pytest.fixture
def count_calls(monkeypatch: pytest.MonkeyPatch) -> Callable[[type, str], list[int]]:
    """Count calls of a proxy method (the proxy runs in-process), to prove that a test
    really exercised the path it is about (several arrivals, flow control...)."""

    def install(cls: type, name: str) -> list[int]:
        counter = [0]
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any) -> Any:
            counter[0] += 1
            return original(self, *args)

        monkeypatch.setattr(cls, name, wrapper)
        return counter

    return install


# --------------------------------------------------------------------------- a scripted upstream


class RawUpstream:
    """A tiny HTTP upstream on a free port: each accepted connection runs `handler(conn,
    number)` in its own thread. `requests` keeps (connection number, request line)."""

    def __init__(self, handler: Callable[[RawUpstream, socket.socket, int], None]) -> None:
        self.handler = handler
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[int, str]] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            number = self.connections
            self.connections += 1
            t = threading.Thread(target=self._run, args=(conn, number), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(10)
        try:
            self.handler(self, conn, number)
        except Exception as exc:  # noqa: BLE001 - reported by close()
            self.errors.append(exc)
        finally:
            conn.close()

    def read_request(self, conn: socket.socket, number: int, buf: bytearray) -> str | None:
        """Read one Content-Length framed request from `conn` (None at EOF)."""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        end = buf.find(b"\r\n\r\n") + 4
        head = bytes(buf[:end]).decode("latin-1")
        del buf[:end]
        m = re.search(r"(?im)^content-length:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        while len(buf) < length:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        self.bodies.append(bytes(buf[:length]))
        del buf[:length]
        line = head.split("\r\n", 1)[0]
        self.requests.append((number, line))
        return line

    def close(self) -> None:
        self._stop.set()
        self._accept.join(5)
        self.listener.close()
        for t in self._threads:
            t.join(5)
        assert not self.errors, self.errors


def _ok(body: bytes, *extra: str) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        + b"".join(e.encode() + b"\r\n" for e in extra)
        + b"\r\n"
        + body
    )


@pytest.fixture
def upstream() -> Iterator[Callable[..., RawUpstream]]:
    servers: list[RawUpstream] = []

    def make(handler: Callable[[RawUpstream, socket.socket, int], None]) -> RawUpstream:
        server = RawUpstream(handler)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


# --------------------------------------------------------------------------- a large index

BIG_DOCS = 1200
BIG_PAD = 5000


@pytest.fixture(scope="module")
def big_index(es710: Any) -> Iterator[str]:
    """A `cap-` index whose full `_search` answer is several MB (deleted afterwards)."""
    name = f"cap-wire-big-{uuid.uuid4().hex[:8]}"
    lines = []
    for i in range(BIG_DOCS):
        lines.append(json.dumps({"index": {"_id": str(i)}}))
        # random hex: compresses to about half, so the gzip answer is MBs too
        lines.append(json.dumps({"n": i, "pad": random.Random(i).randbytes(BIG_PAD // 2).hex()}))
    _es(
        es710.url,
        "PUT",
        f"/{name}",
        json.dumps({"settings": {"number_of_shards": 1, "number_of_replicas": 0}}).encode(),
    )
    result = _es(
        es710.url, "POST", f"/{name}/_bulk?refresh=true", ("\n".join(lines) + "\n").encode(), "application/x-ndjson"
    )
    assert result["errors"] is False
    yield name
    urllib.request.urlopen(urllib.request.Request(f"{es710.url}/{name}", method="DELETE"), timeout=60).read()


def _big_search(index: str, headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps({"size": BIG_DOCS, "sort": [{"n": "asc"}], "query": {"match_all": {}}}).encode()
    return _request("POST", f"/{index}/_search", body, headers)


def _without_took(body: bytes) -> bytes:
    out, n = re.subn(rb'^\{"took":\d+,', b'{"took":0,', body)
    assert n == 1, body[:100]
    return out


# =========================================================================== 1. request bodies in pieces


def test_large_bulk_body_in_many_writes_is_forwarded_and_recorded_exactly(
    es710: Any, file_log: dict[str, Any], index_name: str, count_calls: Any
) -> None:
    arrivals = count_calls(proxy_mod._ClientConnection, "data_received")
    docs = 5600
    bulk = b"".join(
        b'{"index":{"_id":"d%d"}}\n{"n":%d,"pad":"%s"}\n' % (i, i, (b"%05d" % i) * 100) for i in range(docs)
    )
    assert len(bulk) > 3_000_000
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=60) as c:
            wire = _request("POST", f"/{index_name}/_bulk?refresh=true", bulk, {"Content-Type": "application/x-ndjson"})
            c.send_pieces(wire, list(range(65536, len(wire), 65536)), delay=0.002)
            resp = c.response()
            assert resp.status == 200, resp.body[:300]
            result = resp.json()
            assert result["errors"] is False and len(result["items"]) == docs
            # keep-alive: the same connection answers the count
            c.send(_request("GET", f"/{index_name}/_count"))
            assert c.response().json()["count"] == docs
        assert arrivals[0] >= 20, f"the body came in {arrivals[0]} arrivals only: the test did not split it"
        records = read_records(file_log)
        assert len(records) == 1
        assert records[0].path == f"/{index_name}/_bulk?refresh=true"
        assert records[0].body == bulk  # byte for byte
        assert records[0].status == 200 and json.loads(records[0].response_body) == result
    finally:
        proxy.stop()


def test_chunked_bulk_split_inside_chunk_size_lines_is_forwarded_and_recorded_dechunked(
    es710: Any, file_log: dict[str, Any], index_name: str, count_calls: Any
) -> None:
    arrivals = count_calls(proxy_mod._ClientConnection, "data_received")
    docs = 2000
    bulk = b"".join(b'{"index":{"_id":"c%d"}}\n{"n":%d,"s":"%s"}\n' % (i, i, b"x" * (i % 97)) for i in range(docs))
    chunked, size_lines = _chunk(bulk, [1, 7, 4093, 65537, 300, 2, 100_003, 16])
    head = _request(
        "POST",
        f"/{index_name}/_bulk?refresh=true",
        b"",
        {"Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"},
    )
    wire = head + chunked
    # cut inside every chunk-size line (after its first digit), between its CR and LF,
    # and right after the head's blank line's first CRLF
    cuts = [len(head) - 2]
    for off in size_lines:
        line_end = chunked.index(b"\r\n", off)
        cuts += [len(head) + off + 1, len(head) + line_end + 1]
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=60) as c:
            c.send_pieces(wire, cuts, delay=0.0005)
            resp = c.response()
            assert resp.status == 200, resp.body[:300]
            assert resp.json()["errors"] is False and len(resp.json()["items"]) == docs
            c.send(_request("GET", f"/{index_name}/_count"))
            assert c.response().json()["count"] == docs
        assert arrivals[0] >= len(cuts) // 2, f"only {arrivals[0]} arrivals for {len(cuts)} writes"
        records = read_records(file_log)
        assert len(records) == 1 and records[0].body == bulk  # de-chunked, byte for byte
        assert ("Transfer-Encoding", "chunked") in records[0].headers
    finally:
        proxy.stop()


# =========================================================================== 2./3. large reads


def test_multi_mb_search_streams_through_identically(es710: Any, file_log: dict[str, Any], big_index: str) -> None:
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        with Client(_port(es710.url), timeout=60) as direct:
            direct.send(_big_search(big_index))
            expected = direct.response("POST")
        with Client(_port(proxy.url), timeout=60) as c:
            c.send(_big_search(big_index))
            got = c.response("POST")
            assert got.status == 200 and got.framing == expected.framing == "content-length"
            assert len(got.body) > 5_000_000
            assert _without_took(got.body) == _without_took(expected.body)
            hits = got.json()["hits"]["hits"]
            assert [h["_source"]["n"] for h in hits] == list(range(BIG_DOCS))
            # the connection is still good after a multi-MB answer
            c.send(_request("GET", "/"))
            assert c.response().json()["version"]["number"] == "7.10.2"
        assert read_records(file_log) == []  # a read is never recorded
    finally:
        proxy.stop()


def test_multi_mb_gzip_search_streams_through_identically(es710: Any, file_log: dict[str, Any], big_index: str) -> None:
    """With `Accept-Encoding: gzip` ES 7.10.2 compresses on the fly and sends the answer
    chunked (observed: `content-encoding: gzip`, `transfer-encoding: chunked`, no
    Content-Length, chunks of ~150 KB): the proxy must frame that chunked stream
    correctly and pass it through untouched, then keep serving the connection."""
    proxy = start_proxy(es710.url, file_log)
    headers = {"Accept-Encoding": "gzip"}
    try:
        with Client(_port(es710.url), timeout=60) as direct:
            direct.send(_big_search(big_index, headers))
            expected = direct.response("POST")
        with Client(_port(proxy.url), timeout=60) as c:
            c.send(_big_search(big_index, headers))
            got = c.response("POST")
            c.send(_request("GET", "/", headers=headers))
            after = c.response()
        assert got.status == 200 and got.header("content-encoding") == "gzip"
        assert got.framing == expected.framing == "chunked"  # what ES sends for gzip
        assert got.header("content-length") is None and len(got.chunk_sizes) > 10
        assert got.head.lower() == expected.head.lower()
        plain = gzip.decompress(got.body)
        assert len(got.body) > 2_000_000 and len(plain) > 5_000_000
        assert _without_took(plain) == _without_took(gzip.decompress(expected.body))
        assert [h["_source"]["n"] for h in json.loads(plain)["hits"]["hits"]] == list(range(BIG_DOCS))
        assert json.loads(gzip.decompress(after.body))["version"]["number"] == "7.10.2"
    finally:
        proxy.stop()


def test_slow_reader_gets_a_multi_mb_answer_exactly(
    es710: Any, file_log: dict[str, Any], big_index: str, count_calls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client reads 16 KB at a time with pauses: the proxy must apply back-pressure
    (stop reading ES while the client's socket is full), so it never holds more than a
    little of the answer in memory, and lose nothing."""
    paused = count_calls(proxy_mod._ClientConnection, "pause_writing")
    connections: list[Any] = []
    made = proxy_mod._ClientConnection.connection_made

    def remember(self: Any, transport: Any) -> None:
        connections.append(self)
        made(self, transport)

    monkeypatch.setattr(proxy_mod._ClientConnection, "connection_made", remember)
    proxy = start_proxy(es710.url, file_log)
    try:
        with Client(_port(es710.url), timeout=60) as direct:
            direct.send(_big_search(big_index))
            expected = _without_took(direct.response("POST").body)
        with Client(_port(proxy.url), timeout=60, rcvbuf=16384) as c:
            c.send(_big_search(big_index))
            buffered = [0]
            done = threading.Event()

            def sample() -> None:  # how much of the answer the proxy holds for this client
                while not done.is_set():
                    if connections and connections[0].transport is not None:
                        buffered[0] = max(buffered[0], connections[0].transport.get_write_buffer_size())
                    time.sleep(0.002)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            time.sleep(0.3)  # let the proxy fill everything it can
            c.recv_size, c.recv_delay = 16384, 0.0003
            got = c.response("POST")
            done.set()
            sampler.join()
            assert got.status == 200 and _without_took(got.body) == expected
            assert len(got.body) > 5_000_000
            c.recv_size, c.recv_delay = 65536, 0
            c.send(_request("GET", "/"))
            assert c.response().status == 200
        assert paused[0] >= 1, "the client never filled up: back-pressure was not exercised"
        assert buffered[0] < 1_000_000, f"the proxy buffered {buffered[0]} bytes for a slow client"
    finally:
        proxy.stop()


# =========================================================================== 4. bodiless answers


def test_head_requests_have_no_body_and_keep_alive_works(es710: Any, file_log: dict[str, Any], big_index: str) -> None:
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url)) as c:
            c.send(_request("HEAD", "/"))
            head = c.response("HEAD")
            assert head.status == 200 and int(head.header("content-length") or 0) > 100  # length, no body
            c.send(_request("HEAD", f"/{big_index}/_doc/1"))
            assert c.response("HEAD").status == 200
            c.send(_request("HEAD", f"/{big_index}-missing"))
            assert c.response("HEAD").status == 404
            c.send(_request("GET", "/"))
            assert c.response().json()["version"]["number"] == "7.10.2"
            # pipelined: HEAD then GET in one write
            c.send(_request("HEAD", "/") + _request("GET", f"/{big_index}/_doc/7"))
            assert c.response("HEAD").status == 200
            assert c.response().json()["_source"]["n"] == 7
            assert not c.buf
        assert read_records(file_log) == []
    finally:
        proxy.stop()


def test_204_and_304_without_body_then_keep_alive(file_log: dict[str, Any], upstream: Any) -> None:
    """A 204 without any framing header and a 304 announcing a length it does not send
    are complete at their head; a proxy that waited for a body (or the EOF) would hang."""

    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        buf = bytearray()
        while (line := server.read_request(conn, number, buf)) is not None:
            path = line.split(" ")[1]
            if path == "/204":
                conn.sendall(b"HTTP/1.1 204 No Content\r\nX-Seen: 1\r\n\r\n")
            elif path == "/304":
                conn.sendall(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 1234\r\n\r\n')
            elif path == "/head":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
            else:
                conn.sendall(_ok(b'{"ok":true}'))

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            for path, method, status in (("/204", "DELETE", 204), ("/304", "GET", 304), ("/head", "HEAD", 200)):
                c.send(_request(method, path) + _request("GET", "/after"))
                r = c.response(method)
                assert r.status == status
                nxt = c.response()
                assert nxt.status == 200 and nxt.json() == {"ok": True}, path
        assert server.connections == 1  # everything on one kept-alive upstream connection
        records = read_records(file_log)
        assert [(r.method, r.status, r.response_body) for r in records] == [("DELETE", 204, b"")]
    finally:
        proxy.stop()


# =========================================================================== 5. a misbehaving upstream


def test_upstream_closing_a_kept_alive_connection_is_retried_on_a_fresh_one(
    file_log: dict[str, Any], upstream: Any
) -> None:
    """Connection 0 answers one request, then reads the next and closes without an
    answer and without `Connection: close` (a keep-alive timeout racing the reuse): the
    proxy must resend that request on a new connection, once, and record it once."""

    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        buf = bytearray()
        count = 0
        while (line := server.read_request(conn, number, buf)) is not None:
            count += 1
            if number == 0 and count == 2:
                return  # close without answering
            conn.sendall(_ok(json.dumps({"conn": number, "line": line}).encode()))

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("GET", "/first"))
            assert c.response().json() == {"conn": 0, "line": "GET /first HTTP/1.1"}
            c.send(_request("PUT", "/cap-x/_doc/1", b'{"n":1}'))
            r = c.response()
            assert r.status == 200 and r.json() == {"conn": 1, "line": "PUT /cap-x/_doc/1 HTTP/1.1"}
            c.send(_request("GET", "/third"))
            assert c.response().json()["conn"] == 1
        assert server.requests == [
            (0, "GET /first HTTP/1.1"),
            (0, "PUT /cap-x/_doc/1 HTTP/1.1"),
            (1, "PUT /cap-x/_doc/1 HTTP/1.1"),
            (1, "GET /third HTTP/1.1"),
        ]
        assert server.bodies[1] == server.bodies[2] == b'{"n":1}'  # resent whole
        records = read_records(file_log)
        assert len(records) == 1 and records[0].body == b'{"n":1}' and json.loads(records[0].response_body)["conn"] == 1
    finally:
        proxy.stop()


def test_upstream_closing_an_idle_kept_alive_connection(file_log: dict[str, Any], upstream: Any) -> None:
    """The upstream answers and closes at once (no `Connection: close`); the next request
    on the same client connection goes out on a new upstream connection."""

    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        buf = bytearray()
        if server.read_request(conn, number, buf) is not None:
            conn.sendall(_ok(b'{"conn":%d}' % number))

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            for i in range(3):
                c.send(_request("GET", f"/r{i}"))
                assert c.response().json() == {"conn": i}
                time.sleep(0.1)  # the close reaches the proxy while it is idle
        assert [n for n, _ in server.requests] == [0, 1, 2]
    finally:
        proxy.stop()


def test_upstream_that_closes_before_answering_a_fresh_connection_gives_502(
    file_log: dict[str, Any], upstream: Any
) -> None:
    """No retry on a connection that never answered anything: that is not a stale
    kept-alive connection, the upstream refuses the request."""

    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        server.read_request(conn, number, bytearray())

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("GET", "/x"))
            r = c.response()
            assert r.status == 502 and "upstream closed" in r.json()["error"]
            assert c.closed_by_peer()
        assert server.connections == 1
    finally:
        proxy.stop()


def _http10_handler(body: bytes) -> Callable[[RawUpstream, socket.socket, int], None]:
    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        if server.read_request(conn, number, bytearray()) is None:
            return
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
        for i in range(0, len(body), 50_000):
            conn.sendall(body[i : i + 50_000])
            time.sleep(0.002)
        conn.shutdown(socket.SHUT_WR)

    return handler


def test_http10_answer_without_length_is_read_until_close(file_log: dict[str, Any], upstream: Any) -> None:
    body = json.dumps({"pad": "y" * 600_000}).encode()
    server = upstream(_http10_handler(body))
    proxy = start_proxy(server.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("GET", "/read"))
            r = c.response()
            assert r.status == 200 and r.framing == "eof" and r.body == body
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("PUT", "/cap-x/_doc/1", b'{"n":1}'))
            r = c.response()
            assert r.status == 200 and r.framing == "eof" and r.body == body
        records = read_records(file_log)
        assert len(records) == 1 and records[0].method == "PUT"
        assert records[0].response_body == body  # the whole body, up to the close
    finally:
        proxy.stop()


def test_chunked_answer_with_extensions_and_trailers_streams_and_is_recorded_dechunked(
    file_log: dict[str, Any], upstream: Any
) -> None:
    """ES 7.10.2 never chunks its answers; other sources do. The answer arrives in odd
    pieces (cut inside size lines); a read gets the exact wire bytes, a recorded write's
    record holds the de-chunked body, and the connection stays usable."""
    body = json.dumps({"result": "created", "pad": "z" * 200_000}).encode()
    chunked, size_lines = _chunk(body, [1, 4093, 17, 65536, 3], ext_every=2)
    chunked = chunked[:-2] + b"X-Trailer: yes\r\n\r\n"
    cuts = sorted({off + 1 for off in size_lines} | set(range(0, len(chunked), 30_000)))

    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        buf = bytearray()
        while server.read_request(conn, number, buf) is not None:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            start = 0
            for cut in cuts[1:] + [len(chunked)]:
                conn.sendall(chunked[start:cut])
                start = cut
                time.sleep(0.0005)

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=10) as c:
            for method in ("GET", "PUT", "GET"):
                c.send(_request(method, "/cap-x/_doc/1", b'{"n":1}' if method == "PUT" else b""))
                r = c.response()
                assert r.status == 200 and r.framing == "chunked"
                assert r.body == body and r.raw_body == chunked
        assert server.connections == 1
        records = read_records(file_log)
        assert len(records) == 1 and records[0].response_body == body
    finally:
        proxy.stop()


def test_nothing_listening_upstream_gives_502(file_log: dict[str, Any]) -> None:
    proxy = start_proxy(f"http://127.0.0.1:{free_port()}", file_log)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("GET", "/"))
            r = c.response()
            assert r.status == 502 and r.header("content-type") == "application/json"
            assert "upstream unreachable" in r.json()["error"]
            assert c.closed_by_peer()
        # the proxy itself is fine
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("GET", "/__mactl/health"))
            assert c.response().json()["status"] == "ok"
    finally:
        proxy.stop()


def test_upstream_that_never_accepts_gives_502_after_the_connect_timeout(
    file_log: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source whose accept queue is full drops SYNs: connecting hangs instead of failing.
    The proxy gives up after its connect timeout instead of holding the client forever."""
    from mactl.capture import proxy as proxy_module

    monkeypatch.setattr(proxy_module, "CONNECT_TIMEOUT_S", 0.5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepted: the queue fills at once
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(listener.getsockname())
        fillers.append(f)
    proxy = start_proxy(f"http://127.0.0.1:{listener.getsockname()[1]}", file_log)
    try:
        with Client(_port(proxy.url), timeout=10) as c:
            started = time.monotonic()
            c.send(_request("GET", "/"))
            r = c.response()
            assert r.status == 502
            assert (
                r.json()["error"]
                == f"mactl proxy: upstream unreachable: no connection to 127.0.0.1:{listener.getsockname()[1]} within 0.5 s"
            )
            assert time.monotonic() - started < 5
    finally:
        proxy.stop()
        for f in fillers:
            f.close()
        listener.close()


@pytest.mark.parametrize(
    "garbage,close",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", False),  # a head that is not HTTP
        (b"HTTP/1.1 2xx OK\r\nContent-Length: 0\r\n\r\n", False),  # a status that is no number
        (b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", False),
        (b"\x00\x01\x02 binary junk", True),  # no head at all, then the close
    ],
)
def test_garbage_from_upstream_gives_502(file_log: dict[str, Any], upstream: Any, garbage: bytes, close: bool) -> None:
    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        if server.read_request(conn, number, bytearray()) is None:
            return
        conn.sendall(garbage)
        if not close:  # keep the connection open: the proxy must drop it, not wait for more
            conn.settimeout(3)
            assert conn.recv(1) == b"", "the proxy kept a connection that spoke garbage"

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=2) as c:
            c.send(_request("PUT", "/cap-x/_doc/1", b"{}"))
            r = c.response()
            assert r.status == 502 and "mactl proxy" in r.json()["error"]
            assert c.closed_by_peer(2)
        assert read_records(file_log) == []
    finally:
        proxy.stop()


# =========================================================================== 6. malformed requests


@pytest.mark.parametrize(
    "bad",
    [
        b"PUT /cap-x/_doc/1 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        b"PUT /cap-x/_doc/1 HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"GET /\r\nHost: x\r\n\r\n",
        b"GET / SPDY/3\r\nHost: x\r\n\r\n",
        b"POST /cap-x/_bulk HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n",
        # a negative chunk size used to hang the proxy's event loop (see test_cap_http1)
        b"POST /cap-x/_bulk HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\n\r\n",
    ],
)
def test_malformed_request_gets_400_and_the_connection_closes(
    file_log: dict[str, Any], upstream: Any, bad: bytes
) -> None:
    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        buf = bytearray()
        while server.read_request(conn, number, buf) is not None:
            conn.sendall(_ok(b"{}"))

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(bad)
            r = c.response()
            assert r.status == 400 and r.header("connection") == "close"
            assert r.json()["error"].startswith("mactl proxy: ")
            assert c.closed_by_peer()
        with Client(_port(proxy.url), timeout=5) as c:  # the proxy still serves others
            c.send(_request("GET", "/__mactl/health"))
            assert c.response().json()["status"] == "ok"
        assert server.requests == []  # nothing malformed was forwarded
    finally:
        proxy.stop()


# =========================================================================== 7. pipelining


def _pipelined(index: str) -> bytes:
    return (
        _request("PUT", f"/{index}/_doc/p1", b'{"n":1}')
        + _request("PUT", f"/{index}/_doc/p2", b'{"n":22}', {"Connection": "keep-alive"})
        + _request("GET", f"/{index}/_doc/p2")
    )


@pytest.mark.parametrize("fsync", ["interval", "always"])  # "always": answers wait for the log thread
def test_pipelined_requests_sent_byte_by_byte(
    es710: Any, file_log: dict[str, Any], index_name: str, count_calls: Any, fsync: str
) -> None:
    file_log["fsync"] = fsync
    arrivals = count_calls(proxy_mod._ClientConnection, "data_received")
    wire = _pipelined(index_name)
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=15) as c:
            c.send_pieces(wire, list(range(1, len(wire))), delay=0.0002)
            answers = [c.response() for _ in range(3)]
            assert [a.status for a in answers] == [201, 201, 200]
            assert answers[0].json()["_id"] == "p1" and answers[1].json()["_id"] == "p2"
            assert answers[2].json()["_source"] == {"n": 22}
            assert not c.buf
        assert arrivals[0] > len(wire) // 3, f"{arrivals[0]} arrivals for {len(wire)} one-byte writes"
        records = read_records(file_log)
        assert [(r.path, r.body, r.seq) for r in records] == [
            (f"/{index_name}/_doc/p1", b'{"n":1}', 0),
            (f"/{index_name}/_doc/p2", b'{"n":22}', 1),
        ]
        assert len({r.connection_id for r in records}) == 1
        assert [json.loads(r.response_body)["_id"] for r in records] == ["p1", "p2"]
    finally:
        proxy.stop()


def test_pipelined_requests_split_at_awkward_boundaries(es710: Any, file_log: dict[str, Any], index_name: str) -> None:
    wire = _pipelined(index_name)
    # cut inside each CRLFCRLF, right before each body, and right after each body
    cuts = []
    for m in re.finditer(rb"\r\n\r\n", wire):
        cuts += [m.start() + 1, m.start() + 2, m.start() + 3, m.end()]
    for m in re.finditer(rb"\{\"n\":\d+\}", wire):
        cuts += [m.start() + 1, m.end(), m.end() + 1]
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=15) as c:
            c.send_pieces(wire, cuts, delay=0.005)
            assert [c.response().status for _ in range(3)] == [201, 201, 200]
        assert [(r.seq, r.body) for r in read_records(file_log)] == [(0, b'{"n":1}'), (1, b'{"n":22}')]
    finally:
        proxy.stop()


# =========================================================================== found while writing these


def test_client_that_half_closes_gets_its_answers_then_the_close(es710: Any, file_log: dict[str, Any]) -> None:
    """A client may shut down its sending side right after its last request (HTTP/1.0
    tools, `nc -N`): it still gets every answer, then the proxy must close, or the client
    (and the proxy's upstream connection) wait forever."""
    proxy = start_proxy(es710.url, file_log)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("GET", "/") + _request("GET", "/_cluster/health"))
            c.sock.shutdown(socket.SHUT_WR)
            assert c.response().json()["version"]["number"] == "7.10.2"
            assert "status" in c.response().json()
            assert c.closed_by_peer(3), "the proxy kept a half-closed client open after its last answer"
    finally:
        proxy.stop()


def test_connection_close_and_http10_clients_are_closed_after_their_answer(
    es710: Any, file_log: dict[str, Any]
) -> None:
    proxy = start_proxy(es710.url, file_log)
    try:
        for wire in (
            _request("GET", "/", headers={"Connection": "close"}),
            b"GET / HTTP/1.0\r\n\r\n",
        ):
            with Client(_port(proxy.url), timeout=5) as c:
                c.send(wire)
                assert c.response().json()["version"]["number"] == "7.10.2"
                assert c.closed_by_peer(3)
        with Client(_port(proxy.url), timeout=5) as c:  # HTTP/1.0 keep-alive stays open
            c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert c.response().status == 200
            assert not c.closed_by_peer(0.3)
            c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert c.response().status == 200
    finally:
        proxy.stop()


def test_malformed_request_pipelined_behind_a_write_does_not_lose_the_write(
    es710: Any, file_log: dict[str, Any], index_name: str
) -> None:
    """A PUT and, in the same write, a malformed request. The PUT reached the source, so
    its answer must reach the client first and it must be in the capture log; only then
    the 400 for the malformed one, and the close."""
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(
                _request("PUT", f"/{index_name}/_doc/w1", b'{"n":1}') + b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"
            )
            first = c.response()
            assert first.status == 201, first.body
            second = c.response()
            assert second.status == 400 and second.json()["error"] == "mactl proxy: bad Content-Length 'abc'"
            assert c.closed_by_peer()
        assert _es(es710.url, "GET", f"/{index_name}/_doc/w1")["found"] is True  # the source took it
        assert [(r.method, r.body) for r in read_records(file_log)] == [("PUT", b'{"n":1}')]
    finally:
        proxy.stop()


def test_100_continue_for_a_pipelined_request_waits_for_the_answer_before_it(
    file_log: dict[str, Any], upstream: Any
) -> None:
    """The proxy answers `Expect: 100-continue` itself. For a request pipelined behind one
    whose answer is streaming, that interim answer must not be written into the middle of
    the earlier answer's body."""
    half = 100_000

    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        buf = bytearray()
        while (line := server.read_request(conn, number, buf)) is not None:
            if line.startswith("GET /slow"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * half) + b"a" * half)
                time.sleep(0.5)
                conn.sendall(b"b" * half)
            else:
                conn.sendall(_ok(b'{"put":true}'))

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log, capturing=True)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("GET", "/slow"))
            while len(c.buf) < 1000:  # the slow answer has started
                c._fill()
            c.send(
                _request(
                    "PUT",
                    "/cap-x/_doc/1",
                    headers={"Content-Length": "7", "Expect": "100-continue", "Content-Type": "application/json"},
                )
            )
            slow = c.response()
            assert slow.status == 200 and slow.body == b"a" * half + b"b" * half, "100 Continue inside a body"
            cont = c.response(interim=True)
            assert cont.status == 100
            c.send(b'{"n":1}')
            put = c.response()
            assert put.status == 200 and put.json() == {"put": True}
        assert server.bodies[-1] == b'{"n":1}'
        assert [r.body for r in read_records(file_log)] == [b'{"n":1}']
    finally:
        proxy.stop()


def test_upstream_resetting_after_an_early_answer_does_not_stall_the_client(
    file_log: dict[str, Any], upstream: Any
) -> None:
    """Like ES refusing a too-large body with 413: the upstream answers after the head,
    never reads the body, and resets the connection. The proxy stopped reading its client
    while the upstream was not taking the body; losing that upstream must not leave the
    client connection stalled forever."""

    def handler(server: RawUpstream, conn: socket.socket, number: int) -> None:
        buf = bytearray()
        if number == 0:
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            server.requests.append((number, bytes(buf).split(b"\r\n", 1)[0].decode()))
            conn.sendall(b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n\r\n")
            time.sleep(0.3)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            return
        while server.read_request(conn, number, buf) is not None:
            conn.sendall(_ok(b'{"next":true}'))

    server = upstream(handler)
    proxy = start_proxy(server.url, file_log)
    try:
        with Client(_port(proxy.url), timeout=5) as c:
            c.send(_request("PUT", "/cap-x/_doc/big", b"x" * 32_000_000))
            assert c.response().status == 413
            time.sleep(0.5)  # the reset has reached the proxy
            c.send(_request("GET", "/next"))
            assert c.response().json() == {"next": True}
    finally:
        proxy.stop()
