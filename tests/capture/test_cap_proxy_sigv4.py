"""The capture proxy routed to a SigV4 target: it signs every forwarded request itself.

The source is the real ES 7.10.2 behind an in-process proxy (`cap_helpers.start_proxy`);
the "target" is `sigv4_server`'s verifying HTTP server, which recomputes each signature
from the bytes it received without botocore and answers 401 on any mismatch. The
in-process proxy takes its AWS credentials from this test process's environment, which
`isolate_aws_env` sets to known test values (or to nothing) and cuts off from the host's.
Nothing here writes to the shared clusters except one `cap-sig-…` index, deleted after.
"""

from __future__ import annotations

import hashlib
import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cap_helpers import RunningProxy, stage_context, start_proxy  # type: ignore[import-not-found]
from mactl.providers.switchover import SwitchoverProvider
from opensearchpy import OpenSearch
from sigv4_server import (  # type: ignore[import-not-found]
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    SESSION_TOKEN,
    Keys,
    SigV4Target,
    isolate_aws_env,
    serve,
)

from mactl.capture import log as capture_log
from mactl.capture import proxy as proxy_module
from mactl.errors import ConfigError, ProviderError
from mactl.schema.common import ClusterRef
from mactl.schema.switchover import SwitchoverInputs
from mactl.sigv4 import CREDENTIALS_HINT, RequestSigner

CLIENT_AUTH = (
    b"Authorization: Basic Y2xpZW50OmNsaWVudHB3\r\n"
    b"X-Amz-Date: 19990101T000000Z\r\n"
    b"X-Amz-Security-Token: client-own-token\r\n"
    b"x-amz-content-sha256: " + b"0" * 64 + b"\r\n"
)
SECRETS = (SECRET_KEY, SESSION_TOKEN, ACCESS_KEY)

SEARCH_BODY = b'{"query":{"match_all":{}}}'
DOC = '{ "title": "café",  "tags": ["a", "b"] }\n'.encode()
BULK = b'{"index":{"_index":"cap-sig","_id":"2"}}\n{"title":"two"}\n{"delete":{"_index":"cap-sig","_id":"9"}}\n'


def _chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


# (method, raw request as the client sends it, the target the server must see, the body it must read)
REQUESTS = [
    (
        "GET",
        b"GET /cap-sig/_search?filter_path=hits.total,took&q=title:caf%C3%A9+x&pretty HTTP/1.1\r\nHost: proxy\r\n"
        b"X-Cap-Id: 0\r\nContent-Type: application/json\r\n"
        + CLIENT_AUTH
        + b"Content-Length: %d\r\n\r\n" % len(SEARCH_BODY)
        + SEARCH_BODY,
        "/cap-sig/_search?filter_path=hits.total%2Ctook&q=title%3Acaf%C3%A9%20x&pretty",
        SEARCH_BODY,
    ),
    (
        "PUT",
        b"PUT /cap-sig/_doc/1?refresh=true HTTP/1.1\r\nHost: proxy\r\nX-Cap-Id: 1\r\n"
        b"Content-Type: application/json\r\n" + CLIENT_AUTH + b"Content-Length: %d\r\n\r\n" % len(DOC) + DOC,
        "/cap-sig/_doc/1?refresh=true",
        DOC,
    ),
    (
        "POST",
        b"POST /_bulk?filter_path=items.*.error HTTP/1.1\r\nHost: proxy\r\nX-Cap-Id: 2\r\n"
        b"Content-Type: application/x-ndjson\r\n"
        + CLIENT_AUTH
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + _chunked(BULK, 23),
        "/_bulk?filter_path=items.%2A.error",
        BULK,
    ),
    ("HEAD", b"HEAD /cap-sig HTTP/1.1\r\nHost: proxy\r\nX-Cap-Id: 3\r\n" + CLIENT_AUTH + b"\r\n", "/cap-sig", b""),
]


class _Client:
    """One raw keep-alive connection to the proxy (pipelining and chunked bodies as sent)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=15)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the proxy closed the connection"
        self.buf += data

    def response(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body


def _http(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _route(proxy: RunningProxy, body: dict[str, Any], to: str = "target") -> tuple[int, dict[str, Any]]:
    status, raw = _http(f"{proxy.url}/__mactl/route?to={to}", "POST", json.dumps(body).encode())
    return status, json.loads(raw)


def _health(proxy: RunningProxy) -> tuple[str, dict[str, Any]]:
    raw = _http(f"{proxy.url}/__mactl/health")[1].decode()
    return raw, json.loads(raw)


def _assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret[:12]}… in {where}"


@pytest.fixture
def proxy(es710: Any, file_log: dict[str, Any], tmp_path: Path) -> Iterator[RunningProxy]:
    running = start_proxy(es710.url, file_log, capturing=True, state_file=tmp_path / "proxy.state.json")
    yield running
    running.stop()


@pytest.fixture
def sig_index(es: OpenSearch) -> Iterator[str]:
    name = f"cap-sig-{uuid.uuid4().hex[:8]}"
    yield name
    es.indices.delete(index=name, ignore=[404])


def test_every_request_to_a_sigv4_target_is_signed_and_sent_as_signed(
    aws_env: None,
    aws_target: SigV4Target,
    proxy: RunningProxy,
    es710: Any,
    file_log: dict[str, Any],
    sig_index: str,
    tmp_path: Path,
) -> None:
    # on the source: ES answers, and a write is recorded
    assert json.loads(_http(f"{proxy.url}/")[1])["version"]["number"] == "7.10.2"
    assert _http(f"{proxy.url}/{sig_index}/_doc/0", "PUT", b'{"n":0}')[0] == 201
    assert capture_log.current_position(file_log)["records"] == 1

    status, doc = _route(proxy, {"url": aws_target.url, "sigv4": {"region": REGION, "service": "es"}})
    assert status == 200, doc
    assert doc["route"] == "target" and doc["recording"] is False
    assert doc["targetAuth"] == "sigv4" and doc["targetSigv4"] == {"region": REGION, "service": "es"}

    client = _Client(proxy.url)
    try:
        client.sock.sendall(b"".join(raw for _, raw, _, _ in REQUESTS))  # pipelined, in one go
        answers = [client.response(method) for method, _, _, _ in REQUESTS]
    finally:
        client.close()
    assert [status for status, _, _ in answers] == [200, 201, 200, 200], [a[2] for a in answers]

    got = {r.header("X-Cap-Id")[0]: r for r in aws_target.received}
    assert len(aws_target.received) == len(REQUESTS) and sorted(got) == ["0", "1", "2", "3"]
    for i, (method, _, wire, body) in enumerate(REQUESTS):
        r = got[str(i)]
        assert r.problem is None, (method, wire, r.problem, r.canonical)
        assert (r.method, r.target) == (method, wire)
        assert r.body == body  # byte for byte; the chunked bulk arrives de-chunked
        assert r.header("Host") == [f"127.0.0.1:{aws_target.port}"]  # the Host that was signed
        assert r.header("Transfer-Encoding") == []
        assert r.header("Content-Length") == ([str(len(body))] if method != "HEAD" else [])
        # the client's own auth is gone; the signature headers are the proxy's, once each
        assert len(r.header("Authorization")) == 1 and r.header("Authorization")[0].startswith("AWS4-HMAC-SHA256 ")
        assert f"/{REGION}/es/aws4_request" in r.header("Authorization")[0]
        assert r.header("X-Amz-Security-Token") == [SESSION_TOKEN]
        assert len(r.header("X-Amz-Date")) == 1 and r.header("X-Amz-Date") != ["19990101T000000Z"]
        assert r.header("X-Amz-Content-SHA256") == [hashlib.sha256(body).hexdigest()]

    # nothing recorded while routed to the target; health and state name no secret
    assert capture_log.current_position(file_log)["records"] == 1
    raw_health, health = _health(proxy)
    assert health["recordsWritten"] == 1 and health["targetAuth"] == "sigv4"
    _assert_no_secret(raw_health, "health")
    state_text = (tmp_path / "proxy.state.json").read_text()
    _assert_no_secret(state_text, "the state file")
    state = json.loads(state_text)
    assert state["targetSigv4"] == {"region": REGION, "service": "es"} and state["targetAuthorization"] is None

    # a proxy restarted on that state file resumes signing
    restarted = start_proxy(es710.url, file_log, proxy_id="cap-sig-restarted", state_file=tmp_path / "proxy.state.json")
    try:
        assert _health(restarted)[1]["route"] == "target" and _health(restarted)[1]["targetAuth"] == "sigv4"
        assert _http(f"{restarted.url}/cap-sig/_count?q=a:b")[0] == 200
        assert aws_target.received[-1].problem is None and aws_target.received[-1].target == "/cap-sig/_count?q=a%3Ab"
    finally:
        restarted.stop()

    # and back to the source
    status, doc = _route(proxy, {}, to="source")
    assert status == 200 and doc["route"] == "source"
    assert json.loads(_http(f"{proxy.url}/")[1])["version"]["number"] == "7.10.2"
    assert len(aws_target.received) == len(REQUESTS) + 1


def test_a_wrong_secret_on_the_server_gives_the_client_401(
    aws_env: None,
    proxy: RunningProxy,
) -> None:
    for target in serve(Keys({ACCESS_KEY: ("not-" + SECRET_KEY, SESSION_TOKEN)})):
        assert _route(proxy, {"url": target.url, "sigv4": {"region": REGION}})[0] == 200
        status, body = _http(f"{proxy.url}/cap-sig/_doc/1", "PUT", b'{"n":1}')
        assert status == 401 and b"signature" in body
        assert [r.problem for r in target.received] == ["signature mismatch"]


def test_no_credentials_at_route_time_is_a_400_and_the_route_stays(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    aws_target: SigV4Target,
    proxy: RunningProxy,
) -> None:
    isolate_aws_env(monkeypatch, tmp_path, credentials=False)
    status, doc = _route(proxy, {"url": aws_target.url, "sigv4": {"region": REGION, "service": "aoss"}})
    assert status == 400
    assert "route to target: capture proxy cap-test" in doc["error"]
    assert "sigv4 auth found no AWS credentials" in doc["error"]
    assert "AWS_ACCESS_KEY_ID" in doc["hint"]
    raw_health, health = _health(proxy)
    assert health["route"] == "source" and health["targetAuth"] == "none"
    assert json.loads(_http(f"{proxy.url}/")[1])["version"]["number"] == "7.10.2"
    assert aws_target.received == []

    # once the proxy's environment has credentials, the same call routes
    isolate_aws_env(monkeypatch, tmp_path)
    status, doc = _route(proxy, {"url": aws_target.url, "sigv4": {"region": REGION}})
    assert status == 200 and doc["targetSigv4"] == {"region": REGION, "service": "es"}
    _assert_no_secret(_health(proxy)[0], "health")
    _assert_no_secret((tmp_path / "proxy.state.json").read_text(), "the state file")


def test_route_body_problems_are_400s(aws_env: None, aws_target: SigV4Target, proxy: RunningProxy) -> None:
    cases = [
        ({"sigv4": {"service": "es"}}, "route: sigv4.region: sigv4 auth needs the AWS region"),
        ({"sigv4": {"region": REGION, "service": "s3"}}, "sigv4.service: expected es or aoss"),
        ({"sigv4": "us-west-2"}, "`sigv4` must be an object"),
        ({"sigv4": {"region": REGION}, "authorization": "Basic eDp5"}, "`authorization` or `sigv4`, not both"),
    ]
    for extra, message in cases:
        status, doc = _route(proxy, {"url": aws_target.url, **extra})
        assert status == 400 and message in doc["error"], doc
    assert _health(proxy)[1]["route"] == "source"


def test_credentials_failing_later_answer_502_and_the_proxy_carries_on(
    aws_env: None,
    aws_target: SigV4Target,
    proxy: RunningProxy,
) -> None:
    from botocore.exceptions import CredentialRetrievalError

    class Expired:
        def get_frozen_credentials(self) -> Any:
            raise CredentialRetrievalError(provider="cap-test", error_msg="the role session expired")

    assert _route(proxy, {"url": aws_target.url, "sigv4": {"region": REGION}})[0] == 200
    target = proxy.proxy.target
    good = target.signer
    client = _Client(proxy.url)
    try:
        target.signer = RequestSigner(Expired(), REGION)
        client.sock.sendall(b"GET /cap-sig/_count HTTP/1.1\r\nHost: proxy\r\n\r\n")
        status, headers, body = client.response()
        assert status == 502 and headers["content-type"] == "application/json"
        error = json.loads(body)["error"]
        assert "could not sign the request for the target" in error and "the role session expired" in error
        assert aws_target.received == []  # nothing unsigned was sent

        target.signer = good  # the same connection goes on working
        client.sock.sendall(b"GET /cap-sig/_count HTTP/1.1\r\nHost: proxy\r\n\r\n")
        assert client.response()[0] == 200
        assert [r.problem for r in aws_target.received] == [None]
    finally:
        client.close()


def test_health_never_shows_a_basic_authorization(proxy: RunningProxy, tmp_path: Path) -> None:
    status, doc = _route(proxy, {"url": "http://127.0.0.1:9", "authorization": "Basic c2VjcmV0OnNlY3JldHB3"})
    assert status == 200 and doc["targetAuth"] == "basic" and doc["targetSigv4"] is None
    raw, _ = _health(proxy)
    assert "c2VjcmV0OnNlY3JldHB3" not in raw and "Authorization" not in raw
    assert _route(proxy, {}, to="source")[0] == 200


# ----------------------------------------------------------------------------- the switchover stage
def _switchover_inputs(
    source_url: str, proxy_url: str, target_url: str, region: str | None = REGION
) -> SwitchoverInputs:
    return SwitchoverInputs(
        source=ClusterRef(name="src", endpoint=source_url),
        target=ClusterRef(name="aws", endpoint=target_url, auth={"type": "sigv4", "region": region}),
        proxies=[proxy_url],
    )


def test_switchover_validate_needs_a_region_for_a_sigv4_target() -> None:
    provider = SwitchoverProvider()
    assert (
        provider.validate(_switchover_inputs("http://s:9200", "http://p:1", "https://search-x.es.amazonaws.com")) == []
    )
    problems = provider.validate(_switchover_inputs("http://s:9200", "http://p:1", "https://x", region=None))
    assert problems == ["target.auth.region: sigv4 auth needs the AWS region of the domain (e.g. us-east-1)"]


def test_switchover_routes_the_proxies_to_a_sigv4_target_and_back(
    aws_env: None,
    aws_target: SigV4Target,
    proxy: RunningProxy,
    es710: Any,
    tmp_path: Path,
) -> None:
    provider = SwitchoverProvider()
    ctx = stage_context(
        "switchover.sig",
        "switchover",
        _switchover_inputs(es710.url, proxy.url, aws_target.url),
        tmp_path / "work" / "switchover.sig",
    )
    out = provider.apply(ctx)
    assert out["route"] == "target" and [p["route"] for p in out["proxies"]] == ["target"]
    health = _health(proxy)[1]
    assert health["targetAuth"] == "sigv4" and health["targetSigv4"] == {"region": REGION, "service": "es"}
    assert _http(f"{proxy.url}/cap-sig/_doc/1", "PUT", b'{"n":1}')[0] == 201
    assert [r.problem for r in aws_target.received] == [None]
    provider.rollback(ctx)
    assert json.loads(_http(f"{proxy.url}/")[1])["version"]["number"] == "7.10.2"


def test_switchover_fails_clearly_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
    aws_env: None,
    aws_target: SigV4Target,
    proxy: RunningProxy,
    es710: Any,
    tmp_path: Path,
) -> None:
    provider = SwitchoverProvider()
    inputs = _switchover_inputs(es710.url, proxy.url, aws_target.url)
    ctx = stage_context("switchover.sig", "switchover", inputs, tmp_path / "work" / "switchover.sig")

    # the proxy finds none (this apply does): the stage fails with the proxy's refusal
    def none_found(where: str) -> Any:
        raise ConfigError(f"{where}: sigv4 auth found no AWS credentials", hint=CREDENTIALS_HINT)

    monkeypatch.setattr(proxy_module, "aws_credentials", none_found)
    with pytest.raises(
        ProviderError,
        match=r"route refused: route to target: capture proxy cap-test "
        r"\(pid \d+\): sigv4 auth found no AWS credentials",
    ) as info:
        provider.apply(ctx)
    assert "AWS_ACCESS_KEY_ID" in (info.value.hint or "")
    assert _health(proxy)[1]["route"] == "source"

    # this apply finds none either: it fails before touching a proxy
    isolate_aws_env(monkeypatch, tmp_path, credentials=False)
    with pytest.raises(ConfigError, match=r"^target\.auth: sigv4 auth found no AWS credentials"):
        provider.apply(ctx)
    with pytest.raises(ConfigError, match=r"^target\.auth\.region: sigv4 auth needs the AWS region"):
        provider.apply(
            stage_context(
                "switchover.sig",
                "switchover",
                _switchover_inputs(es710.url, proxy.url, aws_target.url, region=None),
                tmp_path / "work" / "switchover.sig",
            )
        )
    assert _health(proxy)[1]["route"] == "source" and aws_target.received == []


def test_a_proxy_restarted_without_credentials_keeps_the_route_and_signs_once_it_has_them(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from mactl.capture.proxy import CaptureProxy, Upstream
    from mactl.sigv4 import SigningError

    state = tmp_path / "proxy.state.json"
    state.write_text(
        json.dumps(
            {
                "capturing": True,
                "route": "target",
                "target": "https://search-x.es.amazonaws.com",
                "targetInsecure": False,
                "targetAuthorization": None,
                "targetSigv4": {"region": REGION, "service": "aoss"},
            }
        )
    )
    isolate_aws_env(monkeypatch, tmp_path, credentials=False)
    restarted = CaptureProxy(Upstream.parse("http://127.0.0.1:9"), None, proxy_id="cap-sig", state_file=state)
    target = restarted.target
    assert restarted.route == "target" and target is not None and target.signer is None
    assert target.sigv4 == (REGION, "aoss") and target.host_header == "search-x.es.amazonaws.com"
    assert restarted.health()["targetAuth"] == "sigv4"
    with pytest.raises(SigningError, match="sigv4 auth found no AWS credentials"):
        restarted._signer(target)  # answered 502 to the client

    isolate_aws_env(monkeypatch, tmp_path)
    target.signer_retry_at = 0.0  # (instead of waiting out the retry interval)
    signer = restarted._signer(target)
    assert (signer.region, signer.service) == (REGION, "aoss") and restarted._signer(target) is signer
