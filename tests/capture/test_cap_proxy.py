"""The capture proxy in front of the real ES 7.10.2: forwarding, recording, filters, routing."""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

from cap_helpers import read_records, start_proxy  # type: ignore[import-not-found]

from mactl.capture import log as capture_log
from mactl.capture.proxy import Filters, is_capturable


def _http(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_read_endpoints_are_not_captured() -> None:
    assert is_capturable("PUT", "/i/_doc/1") and is_capturable("POST", "/i/_bulk") and is_capturable("DELETE", "/i")
    assert not is_capturable("POST", "/i/_search?scroll=1m") and not is_capturable("POST", "/_msearch")
    assert not is_capturable("POST", "/i/_count") and not is_capturable("GET", "/i/_doc/1")
    assert not is_capturable("DELETE", "/_search/scroll")


def test_records_writes_before_answering_and_only_when_signalled(
    es710: Any, file_log: dict[str, Any], index_name: str
) -> None:
    proxy = start_proxy(es710.url, file_log)
    try:
        base = proxy.url
        status, _ = _http(f"{base}/{index_name}/_doc/0", "PUT", b'{"n":0}')
        assert status == 201
        health = json.loads(_http(f"{base}/__mactl/health")[1])
        assert health["capturing"] is False and health["recordsWritten"] == 0
        assert capture_log.current_position(file_log)["records"] == 0  # not capturing yet

        assert json.loads(_http(f"{base}/__mactl/capture/start", "POST", b"")[1])["capturing"] is True
        expected = []
        for i in range(1, 6):
            status, body = _http(f"{base}/{index_name}/_doc/{i}?refresh=true", "PUT", b'{"n":%d}' % i)
            assert status == 201
            expected.append(body)
            # the record is in the log the moment the client has its answer
            assert capture_log.current_position(file_log)["records"] == i
        assert _http(f"{base}/{index_name}/_search", "POST", b'{"query":{"match_all":{}}}')[0] == 200
        assert _http(f"{base}/{index_name}/_doc/1")[0] == 200
        missing, _ = _http(f"{base}/{index_name}/_doc/404", "DELETE")
        assert missing == 404
        records = read_records(file_log)
        assert [(r.method, r.path.split("?")[0], r.status) for r in records] == [
            *[("PUT", f"/{index_name}/_doc/{i}", 201) for i in range(1, 6)],
            ("DELETE", f"/{index_name}/_doc/404", 404),
        ]
        assert [r.response_body for r in records[:5]] == expected
        assert records[0].body == b'{"n":1}' and records[0].request_time <= records[0].response_time
        assert json.loads(_http(f"{base}/__mactl/health")[1])["recordsWritten"] == 6
    finally:
        proxy.stop()


def test_filters_suppress_capture(es710: Any, file_log: dict[str, Any], index_name: str) -> None:
    filters = Filters.from_config({"X-Mactl-Test": "^skip$"}, [r"^/cap-[0-9a-f]+-quiet"])
    proxy = start_proxy(es710.url, file_log, filters=filters, capturing=True)
    try:
        assert _http(f"{proxy.url}/{index_name}/_doc/1", "PUT", b"{}", {"X-Mactl-Test": "skip"})[0] == 201
        assert _http(f"{proxy.url}/{index_name}-quiet/_doc/1", "PUT", b"{}")[0] == 201
        assert _http(f"{proxy.url}/{index_name}/_doc/2", "PUT", b"{}", {"X-Mactl-Test": "keep"})[0] == 201
        assert [r.path for r in read_records(file_log)] == [f"/{index_name}/_doc/2"]
    finally:
        proxy.stop()


def _raw_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Read `count` Content-Length framed responses from a raw socket."""
    buf = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":")[1]) for line in lines[1:] if line.lower().startswith("content-length"))
        while len(buf) < length:
            buf += sock.recv(65536)
        out.append((status, buf[:length]))
        buf = buf[length:]
    return out


def test_pipelined_chunked_and_expect_continue(es710: Any, file_log: dict[str, Any], index_name: str) -> None:
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        port = int(proxy.url.rsplit(":", 1)[1])
        bulk = b"".join(b'{"index":{"_id":"b%d"}}\n{"n":%d}\n' % (i, i) for i in range(20))
        chunked = b"".join(
            b"%x\r\n%s\r\n" % (len(bulk[i : i + 100]), bulk[i : i + 100]) for i in range(0, len(bulk), 100)
        )
        pipelined = (
            f"PUT /{index_name}/_doc/p1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n".encode()
            + b'{"n":1}'
            + f"GET /{index_name}/_doc/p1 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            + f"POST /{index_name}/_bulk?refresh=true HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
            + chunked
            + b"0\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(pipelined)  # three requests in one write: answers must come back in order
            answers = _raw_responses(sock, 3)
            assert [s for s, _ in answers] == [201, 200, 200]
            assert json.loads(answers[1][1])["_source"] == {"n": 1}
            assert json.loads(answers[2][1])["errors"] is False
            sock.sendall(
                f"PUT /{index_name}/_doc/e1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 7\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(b'{"n":9}')
            assert _raw_responses(sock, 1)[0][0] == 201
        records = read_records(file_log)
        assert [r.method for r in records] == ["PUT", "POST", "PUT"]
        assert records[1].body == bulk  # recorded de-chunked, byte for byte
        assert len({r.connection_id for r in records}) == 1 and [r.seq for r in records] == [0, 1, 2]
    finally:
        proxy.stop()


def test_route_switches_traffic_to_target_and_back(
    es710: Any, os2: Any, file_log: dict[str, Any], index_name: str
) -> None:
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        assert json.loads(_http(f"{proxy.url}/")[1])["version"]["number"] == "7.10.2"
        doc = json.loads(
            _http(f"{proxy.url}/__mactl/route?to=target", "POST", json.dumps({"url": os2.url}).encode())[1]
        )
        assert doc["route"] == "target" and doc["recording"] is False
        assert json.loads(_http(f"{proxy.url}/")[1])["version"]["number"] == os2.version
        assert _http(f"{proxy.url}/{index_name}/_doc/t", "PUT", b"{}")[0] == 201  # lands on the target
        assert _http(f"{os2.url}/{index_name}/_doc/t")[0] == 200
        assert _http(f"{es710.url}/{index_name}/_doc/t")[0] == 404
        assert read_records(file_log) == []  # writes to the target are not captured
        _http(f"{proxy.url}/__mactl/route?to=source", "POST", b"")
        assert json.loads(_http(f"{proxy.url}/")[1])["version"]["number"] == "7.10.2"
        assert _http(f"{proxy.url}/__mactl/route?to=elsewhere", "POST", b"")[0] == 400
    finally:
        proxy.stop()
