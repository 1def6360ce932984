"""SigV4-signed replay, checked by a server that recomputes every signature itself.

There is no AWS here. The target is `sigv4_server`'s verifying HTTP server: it rebuilds
the SigV4 signature of each request from what it received, without botocore, answers
401 on any mismatch and records what it got.

The replayer reads a file capture log written here with records, as
`test_cap_replayer.py` does; every index name starts with `cap-` (nothing reaches the
shared clusters).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from sigv4_server import (  # type: ignore[import-not-found]
    ACCESS_KEY,
    AUTH,
    REGION,
    SECRET_KEY,
    SESSION_TOKEN,
    Keys,
    SigV4Target,
    isolate_aws_env,
    serve,
    verify,
)

from mactl.capture import log as capture_log
from mactl.capture.record import Record, encode
from mactl.capture.replayer import (
    Replayer,
    ReplayOptions,
    authorization_for,
    options_from_spec,
)
from mactl.capture.spec import ReplaySpec
from mactl.cli import app
from mactl.cli.app import run_guarded
from mactl.errors import ConfigError
from mactl.schema.common import TransformSpec
from mactl.sigv4 import RequestSigner

# ----------------------------------------------------------------------------- helpers
CLIENT_AUTH = [
    ("Authorization", "Basic Y2xpZW50OmNsaWVudHB3"),
    ("X-Amz-Date", "19990101T000000Z"),
    ("X-Amz-Security-Token", "client-own-token"),
    ("x-amz-content-sha256", "0" * 64),
]


def _record(
    i: int,
    method: str,
    path: str,
    body: bytes,
    *,
    status: int,
    t0: float,
    conn: str = "c1",
    content_type: str | None = "application/json",
) -> bytes:
    headers = [("X-Cap-Id", str(i)), *CLIENT_AUTH]
    if content_type:
        headers.insert(0, ("Content-Type", content_type))
    return encode(
        Record(conn, i, t0 + 0.01 * i, t0 + 0.01 * i + 0.001, method, path, headers, body, status, [], b"{}", "p")
    )


def _write_log(file_log: dict[str, Any], records: list[bytes], *, poison: bool = False) -> None:
    writer = capture_log.open_writer(file_log, "p")
    for n, payload in enumerate(records):
        writer.append(f"c{n % 2}", payload)
        if poison and n == 0:
            writer.append("c0", b"\x01\x00\x00\x00\xffnot a record")  # goes to the dead letters
    writer.close()


def _spec(url: str, *, service: str = "es", transforms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "target": {
            "endpoint": url,
            "auth": {"type": "sigv4", "region": REGION, "service": service, "username": None, "password": None},
        },
        "maxSpeedupFactor": 1000.0,
        "transforms": transforms or [],
        "workers": 2,
    }


def _replay(file_log: dict[str, Any], options: ReplayOptions, group: str) -> Any:
    replayer = Replayer(file_log, group, options)
    return replayer.run({}, until_in_sync=False, until_caught_up=True, timeout_s=30)


def _tuples(workdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (workdir / "tuples.ndjson").read_text().splitlines()]


def _assert_no_secrets(root: Path) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for secret in (SECRET_KEY, SESSION_TOKEN, "AWS4-HMAC-SHA256", "Signature="):
            assert secret.encode() not in data, f"{secret[:12]}… written to {path}"
            assert base64.b64encode(secret.encode()) not in data


T0 = time.time() - 3600
BULK = b'{"index":{"_index":"cap-sig","_id":"2"}}\n{"title":"two"}\n{"delete":{"_index":"cap-sig","_id":"9"}}\n'
CASES = [
    # (method, captured path, body, source status, what the wire path must be)
    (
        "PUT",
        "/cap-sig/_doc/1?refresh=true",
        '{ "title": "café",  "tags": ["a", "b"] }\n'.encode(),
        201,
        "/cap-sig/_doc/1?refresh=true",
    ),
    ("POST", "/_bulk", BULK, 200, "/_bulk"),
    (
        "GET",
        "/cap-sig/_search?filter_path=hits.total,took&q=title:caf%C3%A9+x&pretty",
        b'{"query":{"match_all":{}}}',
        200,
        "/cap-sig/_search?filter_path=hits.total%2Ctook&q=title%3Acaf%C3%A9%20x&pretty",
    ),
    ("GET", "/cap-sig,cap-other/_count", b"", 200, "/cap-sig,cap-other/_count"),
    ("DELETE", "/cap-sig/_doc/%E2%82%AC", b"", 200, "/cap-sig/_doc/%E2%82%AC"),
    ("HEAD", "/cap-sig", b"", 200, "/cap-sig"),
    ("POST", "/cap-sig/_doc", b"\x00\xff binary \r\n bytes", 201, "/cap-sig/_doc"),
]


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize(
    ("target", "signature"),
    [
        # from AWS's published SigV4 test suite: get-vanilla, get-vanilla-query-order-key-case,
        # normalize-path/get-relative-relative (same signature as get-vanilla: the path is "/")
        ("/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ("/example1/example2/../..", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ],
)
def test_the_verifier_agrees_with_the_aws_test_suite(target: str, signature: str) -> None:
    """The server's check is right by itself: AWS's own vectors pass, a changed byte fails."""
    keys = Keys(
        {"AKIDEXAMPLE": ("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)}, region="us-east-1", service="service"
    )
    headers = Message()
    headers["Host"] = "example.amazonaws.com"
    headers["X-Amz-Date"] = "20150830T123600Z"
    headers["Authorization"] = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )
    when = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
    assert verify("GET", target, headers, b"", keys, now=when)[0] is None
    assert verify("GET", target + ("&" if "?" in target else "?") + "x=1", headers, b"", keys, now=when)[0] is not None
    assert verify("GET", target, headers, b"x", keys, now=when)[0] == "signature mismatch"
    assert verify("GET", target, headers, b"", keys)[0] == "X-Amz-Date too far from now"


def test_every_replayed_request_carries_a_valid_signature(
    aws_env: None, aws_target: SigV4Target, file_log: dict[str, Any], tmp_path: Path
) -> None:
    records = [
        _record(i, m, p, b, status=s, t0=T0, content_type=None if m in ("HEAD", "DELETE") else "application/json")
        for i, (m, p, b, s, _) in enumerate(CASES)
    ]
    _write_log(file_log, records, poison=True)
    workdir = tmp_path / "work"
    workdir.mkdir()
    status = _replay(file_log, options_from_spec(ReplaySpec.load(_spec(aws_target.url)), workdir), "cap-sigv4")

    got = {r.header("X-Cap-Id")[0]: r for r in aws_target.received}
    assert sorted(got, key=int) == [str(i) for i in range(len(CASES))] and len(aws_target.received) == len(CASES)
    for i, (method, _, body, _, wire) in enumerate(CASES):
        r = got[str(i)]
        assert r.problem is None, (method, wire, r.problem)
        assert (r.method, r.target) == (method, wire)
        assert r.body == body  # byte for byte
        assert r.header("Host") == [f"127.0.0.1:{aws_target.port}"]  # the Host that was signed
        assert "host" in r.header("Authorization")[0].split("SignedHeaders=")[1]
        # the client's own auth is gone; the signature headers are ours, once each
        assert len(r.header("Authorization")) == 1 and r.header("Authorization")[0].startswith("AWS4-HMAC-SHA256 ")
        assert r.header("X-Amz-Security-Token") == [SESSION_TOKEN]
        assert r.header("X-Amz-Date") != ["19990101T000000Z"] and len(r.header("X-Amz-Date")) == 1
        assert r.header("X-Amz-Content-SHA256") == [hashlib.sha256(body).hexdigest()]

    assert status.replayed == len(CASES) and status.mismatches == 0 and status.target_4xx == 0
    assert status.dead_lettered == 1
    tuples = _tuples(workdir)
    assert len(tuples) == len(CASES) and all(t["match"] for t in tuples)
    assert sorted(t["path"] for t in tuples) == sorted(c[4] for c in CASES)
    assert (workdir / "deadletter.ndjson").read_text().count("\n") == 1
    assert json.loads((workdir / "status.json").read_text())["replayed"] == len(CASES)
    _assert_no_secrets(tmp_path)


def test_the_transformed_request_is_what_gets_signed(
    aws_env: None, aws_target: SigV4Target, file_log: dict[str, Any], tmp_path: Path
) -> None:
    _write_log(
        file_log,
        [
            _record(0, "PUT", "/cap-src/_doc/1", b'{"n":1}', status=201, t0=T0),
            _record(1, "POST", "/cap-src/_doc/2?refresh=true", b'{"n":2}', status=201, t0=T0),
        ],
    )
    rename = TransformSpec(
        kind="jinja",
        template=(
            '{"path": {{ request.path | replace("/cap-src/", "/cap-dst/") | tojson }},'
            ' "body": {"n": {{ request.body.n }}, "replayed": true}}'
        ),
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    spec = _spec(aws_target.url, transforms=[rename.model_dump()])
    status = _replay(file_log, options_from_spec(ReplaySpec.load(spec), workdir), "cap-sigv4-rename")

    assert status.replayed == 2 and status.mismatches == 0
    by_target = {r.target: r for r in aws_target.received}
    assert set(by_target) == {"/cap-dst/_doc/1", "/cap-dst/_doc/2?refresh=true"}
    for target, r in by_target.items():
        assert r.problem is None
        assert r.body == b'{"n":%s,"replayed":true}' % target.split("/")[3][0].encode()
        path, _, query = target.partition("?")
        # the verifier rebuilt its canonical request from the renamed path: that is what was signed
        assert r.canonical.split("\n")[1:3] == [path, query]
    _assert_no_secrets(tmp_path)


def test_a_wrong_secret_on_the_server_shows_as_401_in_the_tuples(
    aws_env: None, file_log: dict[str, Any], tmp_path: Path
) -> None:
    _write_log(
        file_log, [_record(i, "PUT", f"/cap-sig/_doc/{i}", b'{"n":%d}' % i, status=201, t0=T0) for i in range(4)]
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    for target in serve(Keys({ACCESS_KEY: ("not-" + SECRET_KEY, SESSION_TOKEN)})):
        status = _replay(file_log, options_from_spec(ReplaySpec.load(_spec(target.url)), workdir), "cap-sigv4-wrong")
        assert [r.problem for r in target.received] == ["signature mismatch"] * 4
    assert status.replayed == 4 and status.mismatches == 4 and status.target_4xx == 4
    tuples = _tuples(workdir)
    assert [(t["target"]["status"], t["match"]) for t in tuples] == [(401, False)] * 4
    _assert_no_secrets(tmp_path)


def test_aoss_signs_for_the_aoss_service_with_the_content_hash(
    aws_env: None, file_log: dict[str, Any], tmp_path: Path
) -> None:
    body = b'{"title":"serverless"}'
    _write_log(
        file_log,
        [
            _record(0, "PUT", "/cap-aoss/_doc/1", body, status=201, t0=T0),
            _record(1, "DELETE", "/cap-aoss/_doc/2", b"", status=200, t0=T0, content_type=None),
        ],
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    for target in serve(Keys({ACCESS_KEY: (SECRET_KEY, SESSION_TOKEN)}, service="aoss")):
        status = _replay(
            file_log, options_from_spec(ReplaySpec.load(_spec(target.url, service="aoss")), workdir), "cap-sigv4-aoss"
        )
        assert len(target.received) == 2
        for r in target.received:
            assert r.problem is None
            auth = r.header("Authorization")[0]
            assert f"/{REGION}/aoss/aws4_request" in auth
            assert "x-amz-content-sha256" in auth.split("SignedHeaders=")[1].split(",")[0].split(";")
            assert r.header("X-Amz-Content-SHA256") == [hashlib.sha256(r.body).hexdigest()]
    assert status.replayed == 2 and status.mismatches == 0
    _assert_no_secrets(tmp_path)


def test_refreshable_credentials_are_renewed_while_replaying(file_log: dict[str, Any], tmp_path: Path) -> None:
    """Role credentials near expiry are refreshed: later requests carry the new key."""
    from botocore.credentials import RefreshableCredentials

    issued: list[str] = []

    def refresh() -> dict[str, str]:
        key = f"AKIDCAPROTATED{len(issued):06d}"
        issued.append(key)
        expiry = datetime.now(UTC) + timedelta(seconds=60)  # inside the refresh window: renewed each time
        return {
            "access_key": key,
            "secret_key": f"{SECRET_KEY}-{key}",
            "token": f"{SESSION_TOKEN}-{key}",
            "expiry_time": expiry.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "cap-test")
    _write_log(
        file_log, [_record(i, "PUT", f"/cap-sig/_doc/{i}", b'{"n":%d}' % i, status=201, t0=T0) for i in range(3)]
    )
    secrets = {
        f"AKIDCAPROTATED{n:06d}": (f"{SECRET_KEY}-AKIDCAPROTATED{n:06d}", f"{SESSION_TOKEN}-AKIDCAPROTATED{n:06d}")
        for n in range(50)
    }
    for target in serve(Keys(secrets)):
        options = ReplayOptions(
            target_url=target.url,
            target_signer=RequestSigner(credentials, REGION, "es"),
            max_speedup=1000,
            tuples_path=tmp_path / "tuples.ndjson",
        )
        status = _replay(file_log, options, "cap-sigv4-refresh")
        used = [AUTH.match(r.header("Authorization")[0])["key"] for r in target.received]  # type: ignore[index]
        assert all(r.problem is None for r in target.received)
    assert status.replayed == 3 and status.mismatches == 0
    assert len(set(used)) == 3 and "AKIDCAPROTATED000000" not in used  # a fresh key for every signing


def test_missing_region_and_missing_credentials_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec("https://search-cap.us-west-2.es.amazonaws.com")
    spec["target"]["auth"]["region"] = None
    with pytest.raises(ConfigError, match=r"^target\.auth\.region: sigv4 auth needs the AWS region"):
        options_from_spec(ReplaySpec.load(spec), tmp_path)

    isolate_aws_env(monkeypatch, tmp_path, credentials=False)
    with pytest.raises(ConfigError, match=r"^target\.auth: sigv4 auth found no AWS credentials"):
        options_from_spec(ReplaySpec.load(_spec("https://search-cap.us-west-2.es.amazonaws.com")), tmp_path)

    # the same through `mactl replay run`: one clear line, no traceback
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(
            {
                **_spec("https://search-cap.us-west-2.es.amazonaws.com"),
                "log": {"type": "file", "path": str(tmp_path / "log")},
                "workdir": str(tmp_path / "work"),
            }
        )
    )
    code = run_guarded(app, ["replay", "run", "--spec", str(spec_file)])
    out = capsys.readouterr()
    assert code != 0 and "Traceback" not in out.err + out.out
    assert "target.auth: sigv4 auth found no AWS credentials" in out.err


def test_sigv4_is_no_static_authorization_header() -> None:
    """A static header is fine for basic and refused for sigv4 (the replayer and the
    switchover's proxies sign each request instead)."""
    assert authorization_for({"type": "basic", "username": "u", "password": "p"}) == "Basic dTpw"
    assert authorization_for({"type": "none"}) is None
    with pytest.raises(ConfigError, match=r"^target\.auth\.type: sigv4 signs every request"):
        authorization_for({"type": "sigv4", "region": REGION, "service": "es"})
