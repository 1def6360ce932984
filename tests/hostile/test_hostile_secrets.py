"""No planted secret leaks into any output or any file mactl writes (issue 19).

A config carries secrets in every place one can hide: a password variable NOT marked
sensitive but used in `auth.password` (treated as sensitive, with a warning), a password
holding `@`, `:`, `/` and quotes, a URL's userinfo (the source endpoint, a dead letter's
endpoint), a sensitive variable passed through `urlencode`, a sensitive number, an
`Authorization` header in `capture.filters.skipHeaders`. Every command's stdout and
stderr, and every file the commands wrote, is searched for each secret in raw,
URL-encoded, base64 and JSON-escaped forms.

The offline test (the whole config, capture included) runs validate, plan (text, JSON, markdown, `-out`), show (all three
formats), graph, status, state list and lock status. The cluster test runs one real
`apply` (snapshot, metadata, backfill, validate: no capture, which would leave a proxy running) against the local clusters with the
state in S3 behind an endpoint whose URL holds a password, then `state list`,
`lock status` and `status`, and also searches the state and its backups in S3. The
clusters run without security, so the credentials are sent and ignored.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from mactl.cli import app
from mactl.cli.app import run_guarded

PW = 'P@ss:w/rd "Zq9" 7731'  # in auth.password through a variable not marked sensitive
URL_PW = "UrlPw-8842x"  # the userinfo password of the source endpoint
DL_PW = "DlPw-5521y"  # the userinfo password of a dead letter's S3 endpoint
TOKEN = "Tok en/9&x=77"  # a sensitive variable used through urlencode
NUM = 86421357  # a sensitive number
HDR = "Bearer HdrSecret-3141"  # an Authorization header value in skipHeaders
S3_PW = "S3StatePw-6060"  # the userinfo password of the S3 state endpoint

SECRETS = [PW, URL_PW, DL_PW, TOKEN, str(NUM), HDR.split()[1], S3_PW]


def forms(secret: str) -> set[str]:
    """The forms a leaked secret could take: raw, URL-encoded, base64, JSON-escaped."""
    raw = secret.encode()
    return {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        base64.b64encode(raw).decode().rstrip("="),
        json.dumps(secret)[1:-1],
    }


def leaks(text: str | bytes) -> list[str]:
    blob = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return sorted({f"{s!r} as {f!r}" for s in SECRETS for f in forms(s) if f in blob})


def config(
    *, source: str, target: str, repo: dict[str, Any], state: dict[str, Any], index: str, capture: bool = True
) -> dict[str, Any]:
    source_host = source.split("://", 1)[1]
    cfg: dict[str, Any] = {
        "variables": {
            "pw": {"type": "string"},  # not marked: mactl must treat it as sensitive
            "token": {"type": "string", "sensitive": True},
            "num": {"type": "number", "sensitive": True},
        },
        "state": state,
        "targets": [
            {
                "name": "os2",
                "endpoint": target,
                "auth": {"type": "basic", "username": "admin", "password": "{{ var.pw }}"},
            }
        ],
        "source-migration-configurations": [
            {
                "source": {
                    "name": "es",
                    "endpoint": f"http://admin:{URL_PW}@{source_host}",
                    "snapshotRepository": repo,
                },
                "capture": {
                    "log": {"type": "file", "path": "capture-log"},
                    "filters": {"skipHeaders": {"Authorization": HDR, "X-Amz-Security-Token": TOKEN}},
                },
                "snapshot-and-migration-configs": [
                    {
                        "name": "snap",
                        "indices": {"names": [index]},
                        "migrations": [
                            {
                                "name": "m0",
                                "documentBackfillConfigs": [
                                    {
                                        "name": "b0",
                                        "workers": 1,
                                        "deadLetter": {
                                            "location": "dead-letters",
                                            "endpoint": f"http://dl:{DL_PW}@127.0.0.1:19500",
                                        },
                                    }
                                ],
                            }
                        ],
                    }
                ],
                "validation": {
                    "sampleSize": 5,
                    "seed": "{{ var.num }}",
                    "settleSeconds": 0,
                    "queries": [
                        {"name": "q", "index": index, "query": {"term": {"note": "{{ var.token | urlencode }}"}}}
                    ],
                },
            }
        ],
    }
    if not capture:  # a capture stage leaves a proxy running: not for a test's real apply
        del cfg["source-migration-configurations"][0]["capture"]
    return cfg


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACTL_")}
    env.update({"MACTL_VAR_pw": PW, "MACTL_VAR_token": TOKEN, "MACTL_VAR_num": str(NUM)})
    return env


def _written(folder: Path, skip: set[str]) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and str(p.relative_to(folder)) not in skip
    }


def test_no_secret_in_any_offline_output_or_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _env().items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("MACTL_") and not k.startswith("MACTL_VAR_")]:
        monkeypatch.delenv(key)
    cfg = config(
        source="http://127.0.0.1:19200",
        target="http://127.0.0.1:29200",
        repo={"type": "fs", "location": "/r"},
        state={"backend": "local", "path": ".mactl"},
        index="hostile-secrets",
    )
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)
    commands = [
        ["validate"],
        ["validate", "--json"],
        ["plan", "-refresh=false"],
        ["plan", "-refresh=false", "-json"],
        ["plan", "-refresh=false", "-markdown"],
        ["plan", "-refresh=false", "-out", "p.bin"],
        ["show", "p.bin"],
        ["show", "--json", "p.bin"],
        ["show", "--markdown", "p.bin"],
        ["graph"],
        ["graph", "--format", "json"],
        ["status"],
        ["state", "list"],
        ["lock", "status"],
        ["plan", "-refresh=false", "-var", "num=notanumber"],  # an error that names the variable
    ]
    outputs = {}
    stdout = {}
    for argv in commands:
        full = argv if argv[0] == "show" else [*argv, "-c", "c.json"]
        code = run_guarded(app, full)
        out = capsys.readouterr()
        outputs[" ".join(argv)] = (code, out.out + out.err)
        stdout[" ".join(argv)] = out.out
    for argv, (_code, text) in outputs.items():
        assert "Traceback" not in text, (argv, text[-2000:])
        assert not leaks(text), (argv, leaks(text))
    assert outputs["plan -refresh=false -out p.bin"][0] == 0
    assert outputs["validate"][0] == 0, outputs["validate"][1]
    assert "variables.pw" in outputs["validate"][1] and "sensitive" in outputs["validate"][1]
    # The masked values are really there (the plan shows them masked, not missing).
    plan_json = json.loads(stdout["show --json p.bin"])
    assert plan_json["variables"]["pw"] == "(sensitive)"
    events = [json.loads(line) for line in stdout["plan -refresh=false -json"].splitlines()]
    assert events[0]["type"] == "version" and events[-1]["type"] == "change_summary"
    files = _written(tmp_path, {"c.json"})
    assert "p.bin" in files
    for name, data in files.items():
        assert not leaks(data), (name, leaks(data))


def _post(url: str, path: str, body: Any, method: str = "PUT") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


@pytest.mark.cluster
@pytest.mark.s3
@pytest.mark.slow
def test_a_real_apply_leaks_no_secret(tmp_path: Path, es710: Any, os2: Any, s3_server: Any) -> None:
    import boto3

    uid = uuid.uuid4().hex[:8]
    index = f"hostile-secrets-{uid}"
    bucket = f"hostile-secrets-{uid}"
    s3 = boto3.client(
        "s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    s3.create_bucket(Bucket=bucket)
    repo_dir = es710.repo_folder("hostile", uid)
    docs = b"".join(
        json.dumps({"index": {"_index": index, "_id": str(i)}}).encode()
        + b"\n"
        + json.dumps({"n": i, "note": "plain"}).encode()
        + b"\n"
        for i in range(20)
    )
    _post(es710.url, "/_bulk?refresh=true", docs, "POST")
    s3_host = s3_server.url.split("://", 1)[1]
    cfg = config(
        source=es710.url,
        target=os2.url,
        repo={"type": "fs", "name": f"hostile-{uid}", "location": str(repo_dir)},
        state={"backend": "s3", "bucket": bucket, "endpoint": f"http://s3user:{S3_PW}@{s3_host}"},
        index=index,
        capture=False,
    )
    # The dead letter S3 endpoint is never contacted (no document fails); keep it local.
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    env = _env()
    env.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"})

    def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mactl", *argv, "-c", "c.json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    try:
        applied = run("apply", "-auto-approve", timeout=300)
        assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
        count = _post(os2.url, f"/{index}/_count", {}, "POST")["count"]
        assert count == 20
        results = [applied]
        results += [run("state", "list"), run("lock", "status"), run("status"), run("status", "--json")]
        # The plan masks with the state's rule, so a URL password is no spurious change.
        replan = run("plan", "-refresh=false", "-detailed-exitcode")
        assert replan.returncode == 0, replan.stdout[:2500] + replan.stderr[-2000:]
        results += [replan, run("plan"), run("audit")]
        for result in results:
            text = result.stdout + result.stderr
            assert "Traceback" not in text, (result.args, text[-2000:])
            assert not leaks(text), (result.args, leaks(text))
        for name, data in _written(tmp_path, {"c.json"}).items():
            assert not leaks(data), (name, leaks(data))
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert any(k.endswith("state.json") for k in keys), keys
        for key in keys:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert not leaks(body), (key, leaks(body))
    finally:
        for url in (es710.url, os2.url):
            req = urllib.request.Request(f"{url}/{index}", method="DELETE")
            try:
                urllib.request.urlopen(req, timeout=30).close()
            except OSError:
                pass
