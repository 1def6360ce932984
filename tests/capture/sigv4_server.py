"""An HTTP server that checks AWS SigV4 signatures itself: the stand-in for an AWS target.

There is no AWS in the tests. This server (a thread on a free 127.0.0.1 port) rebuilds
the SigV4 signature of each request it receives from the raw request: the method, the
request target as it arrived, the headers the Authorization header says were signed, and
the SHA-256 of the body bytes it read (it reads `Content-Length` bytes: a chunked body
would not verify). It knows the test credentials (and, for a negative case, a wrong
secret), answers 401 on any mismatch and 200/201 JSON otherwise, and records what it got.
The verifier is written from the SigV4 description (canonical request, string to sign,
key derivation) and does not use botocore, so mactl's signing cannot pass by agreeing
with itself.

Used by the replayer's tests (`test_replay_sigv4.py`) and the proxy's
(`test_cap_proxy_sigv4.py`). A module with a unique name (not `conftest`) so tests can
import it whatever else the whole suite has put on `sys.path`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

ACCESS_KEY = "AKIDCAPTESTKEY000001"
SECRET_KEY = "cap-secret/Zm9vYmFyYmF6cXV4c2VjcmV0a2V5MDAx"
SESSION_TOKEN = "cap-session-token-IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ"
REGION = "us-west-2"

AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r" ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<sig>[0-9a-f]{64})"
)


# ----------------------------------------------------------------------------- the verifier
def _uri_encode(text: str) -> str:
    """SigV4 URI-encode: every byte but the unreserved characters A-Z a-z 0-9 - _ . ~"""
    return quote(text, safe="-_.~")


def _canonical_uri(raw_path: str) -> str:
    """Non-S3 services: the path as received, dot segments and empty segments removed,
    and each segment URI-encoded (once more: the path on the wire is already encoded)."""
    segments: list[str] = []
    for seg in raw_path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segments:
                segments.pop()
            continue
        segments.append(seg)
    uri = "/" + "/".join(_uri_encode(s) for s in segments)
    return uri + "/" if raw_path.endswith("/") and segments else uri


def _canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_uri_encode(unquote(name)), _uri_encode(unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


@dataclass
class Keys:
    secrets: dict[str, tuple[str, str | None]]  # access key -> (secret, session token)
    region: str = REGION
    service: str = "es"


def verify(
    method: str, target: str, headers: Message, body: bytes, keys: Keys, now: datetime | None = None
) -> tuple[str | None, str]:
    """(None, canonical request) when the signature is right, else (why not, what was rebuilt)."""
    auths = headers.get_all("Authorization") or []
    if len(auths) != 1:
        return f"{len(auths)} Authorization headers", ""
    m = AUTH.fullmatch(auths[0])
    if m is None:
        return "Authorization is not AWS4-HMAC-SHA256", ""
    if m["key"] not in keys.secrets:
        return f"unknown access key {m['key']}", ""
    secret, token = keys.secrets[m["key"]]
    if (m["region"], m["service"]) != (keys.region, keys.service):
        return f"scope {m['region']}/{m['service']}", ""
    dates = headers.get_all("X-Amz-Date") or []
    if len(dates) != 1 or not dates[0].startswith(m["date"]):
        return f"X-Amz-Date {dates}", ""
    signed_at = datetime.strptime(dates[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs((now or datetime.now(UTC)) - signed_at) > timedelta(minutes=5):
        return "X-Amz-Date too far from now", ""
    signed = m["signed"].split(";")
    if signed != sorted(set(signed)) or "host" not in signed:
        return f"SignedHeaders {m['signed']}", ""
    amz = {k.lower() for k in headers if k.lower().startswith("x-amz-")}
    if not amz <= set(signed):
        return f"unsigned x-amz headers {sorted(amz - set(signed))}", ""
    tokens = headers.get_all("X-Amz-Security-Token") or []
    if token is not None and tokens != [token]:
        return "session token missing or wrong", ""
    payload_hash = hashlib.sha256(body).hexdigest()
    content_sha = headers.get_all("X-Amz-Content-SHA256") or []
    if content_sha and content_sha != [payload_hash]:
        return "X-Amz-Content-SHA256 is not the body's hash", ""
    if keys.service == "aoss" and not content_sha:
        return "aoss needs X-Amz-Content-SHA256", ""
    canonical_headers = ""
    for name in signed:
        values = headers.get_all(name)
        if not values:
            return f"signed header {name} not sent", ""
        canonical_headers += f"{name}:{','.join(' '.join(v.split()) for v in values)}\n"
    raw_path, _, query = target.partition("?")
    canonical = "\n".join(
        [method, _canonical_uri(raw_path), _canonical_query(query), canonical_headers, m["signed"], payload_hash]
    )
    scope = f"{m['date']}/{m['region']}/{m['service']}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", dates[0], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret).encode(), m["date"])
    for part in (m["region"], m["service"], "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, m["sig"]):
        return "signature mismatch", canonical
    return None, canonical


@dataclass
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    problem: str | None
    canonical: str

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class SigV4Target:
    url: str
    port: int
    keys: Keys
    received: list[Received] = field(default_factory=list)


AWS_ENV_NAMES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def isolate_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, credentials: bool = True) -> None:
    """The default AWS chain sees the test credentials (or, with `credentials=False`,
    nothing at all), never the host's: no profile files, no instance metadata."""
    for name in AWS_ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


def serve(keys: Keys) -> Iterator[SigV4Target]:
    """Run a verifying server on a free 127.0.0.1 port for as long as the generator is
    open (`for target in serve(keys): ...`, or `yield from` in a fixture)."""
    lock = threading.Lock()
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            problem, canonical = verify(self.command, self.path, self.headers, body, keys)
            with lock:
                received.append(Received(self.command, self.path, list(self.headers.items()), body, problem, canonical))
            if problem is not None:
                status, doc = 401, {"message": f"The request signature we calculated does not match: {problem}"}
            else:
                status = 201 if self.command == "PUT" else 200
                doc = {"acknowledged": True, "errors": False} if "_bulk" in self.path else {"acknowledged": True}
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield SigV4Target(f"http://127.0.0.1:{port}", port, keys, received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
