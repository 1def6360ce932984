"""The replayer against the real OpenSearch 2.x target: poison records, exit criteria, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import OpenSearch

from mactl.capture import log as capture_log
from mactl.capture.record import Record, encode
from mactl.capture.replayer import Replayer, ReplayOptions
from mactl.schema.common import TransformSpec


def _put(index: str, doc_id: str, body: bytes, *, t: float, conn: str = "c1", seq: int = 0, status: int = 201) -> bytes:
    return encode(
        Record(
            conn,
            seq,
            t,
            t + 0.001,
            "PUT",
            f"/{index}/_doc/{doc_id}",
            [("Content-Type", "application/json"), ("Authorization", "Basic c291cmNlOnNlY3JldA==")],
            body,
            status,
            [],
            b"{}",
            "p",
        )
    )


def _options(tmp_path: Path, os2: Any, **kw: Any) -> ReplayOptions:
    return ReplayOptions(
        target_url=os2.url,
        tuples_path=tmp_path / "tuples.ndjson",
        deadletter_path=tmp_path / "dead.ndjson",
        status_path=tmp_path / "status.json",
        **kw,
    )


def _ids(client: OpenSearch, index: str) -> set[str]:
    client.indices.refresh(index=index)
    res = client.search(index=index, body={"query": {"match_all": {}}, "size": 10000, "_source": False})
    return {h["_id"] for h in res["hits"]["hits"]}


def test_poison_records_go_to_dead_letters_and_the_stream_moves_on(
    tmp_path: Path, os2: Any, target: OpenSearch, file_log: dict[str, Any], index_name: str
) -> None:
    writer = capture_log.open_writer(file_log, "p")
    now = time.time() - 3600  # an hour old: the lag only drops once everything is replayed
    writer.append("c1", _put(index_name, "1", b'{"n":1}', t=now, seq=0))
    writer.append("c1", b"\x01\x00\x00\x00\xffnot a record")  # undecodable
    writer.append("c1", _put(index_name, "poison", b'{"n":2}', t=now + 0.01, seq=1))  # its transform fails
    for i in range(2, 12):
        writer.append("c1", _put(index_name, str(i), b'{"n":%d}' % i, t=now + 0.01 * i, seq=i))
    writer.close()
    rename = TransformSpec(
        kind="jinja",
        template=(
            "{% if request.path.endswith('/poison') %}{{ no_such_variable }}{% endif %}"
            '{"path": {{ request.path | replace("/' + index_name + '/", "/' + index_name + '-renamed/") | tojson }},'
            ' "body": {"n": {{ request.body.n }}, "replayed": true}}'
        ),
    )
    replayer = Replayer(
        file_log,
        "cap-poison",
        _options(tmp_path, os2, transforms=[rename], max_lag_s=5, lag_window_s=0.5, max_speedup=100),
    )
    status = replayer.run({}, until_in_sync=True, timeout_s=60)
    assert status.in_sync and status.replayed == 11 and status.dead_lettered == 2 and status.mismatches == 0
    assert _ids(target, f"{index_name}-renamed") == {"1", *map(str, range(2, 12))}
    assert target.get(index=f"{index_name}-renamed", id="7")["_source"] == {"n": 7, "replayed": True}
    dead = [json.loads(line) for line in (tmp_path / "dead.ndjson").read_text().splitlines()]
    assert [(d["offset"], d["reason"].split(":")[0]) for d in dead] == [
        (1, "undecodable record"),
        (2, "transform failed"),
    ]
    assert "no_such_variable" in dead[1]["reason"]
    assert capture_log.open_reader(file_log, "cap-poison").committed() == {"p": 13}


def test_exit_criteria_not_met_while_4xx_mismatches_occur(
    tmp_path: Path, os2: Any, target: OpenSearch, file_log: dict[str, Any], index_name: str
) -> None:
    writer = capture_log.open_writer(file_log, "p")
    stop_bad = threading.Event()

    def feed() -> None:
        seq = 0
        while not stop_bad.is_set():  # the source took these (201); the target rejects them (400)
            writer.append("bad", _put(index_name, f"x{seq}", b"{not json", t=time.time(), conn="bad", seq=seq))
            seq += 1
            time.sleep(0.2)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        opts = _options(tmp_path, os2, max_lag_s=3, lag_window_s=1.5)
        first = Replayer(file_log, "cap-exit", opts).run({}, until_in_sync=True, timeout_s=4)
        assert not first.in_sync and first.mismatches > 5 and first.target_4xx == first.mismatches
        assert first.lag_s < 3  # lag alone would pass: the mismatches are what holds it back
    finally:
        stop_bad.set()
        feeder.join()
    writer.append("good", _put(index_name, "ok", b'{"n":1}', t=time.time(), conn="good"))
    writer.close()
    second = Replayer(file_log, "cap-exit", _options(tmp_path, os2, max_lag_s=3, lag_window_s=1.5))
    started = time.time()
    status = second.run({}, until_in_sync=True, timeout_s=30)
    # the bad records appended after the first run stopped still mismatch, then the window must pass clean
    assert status.in_sync and status.mismatches <= 3 and time.time() - started >= 1.5
    assert status.good_since is not None and time.time() - status.good_since >= 1.5
    assert target.get(index=index_name, id="ok")["_source"] == {"n": 1}
    tuples = [json.loads(line) for line in (tmp_path / "tuples.ndjson").read_text().splitlines()]
    bad = [t for t in tuples if not t["match"]]
    assert bad and all(t["source"]["status"] == 201 and t["target"]["status"] == 400 for t in bad)


def test_killed_replayer_resumes_without_loss(
    tmp_path: Path, os2: Any, target: OpenSearch, file_log: dict[str, Any], index_name: str
) -> None:
    n = 300
    writer = capture_log.open_writer(file_log, "p")
    t0 = time.time() - 60
    for i in range(n):  # 6 s of source traffic on 3 connections: replayed at 1x it takes 6 s
        writer.append(
            f"c{i % 3}", _put(index_name, str(i), b'{"n":%d}' % i, t=t0 + i * 0.02, conn=f"c{i % 3}", seq=i // 3)
        )
    writer.close()
    workdir = tmp_path / "replay"
    spec = {
        "log": file_log,
        "group": "cap-kill",
        "start": {},
        "resume": True,
        "target": {"endpoint": os2.url},
        "maxSpeedupFactor": 1.0,
        "maxLagSeconds": 2,
        "lagWindowSeconds": 0.5,
        "workdir": str(workdir),
    }
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "mactl", "replay", "run", "--spec", str(spec_file), "--json", "--timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = capture_log.open_reader(file_log, "cap-kill")
    deadline = time.time() + 30
    while time.time() < deadline and (reader.committed() or {}).get("p", 0) < 60:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to commit or flush
    proc.wait()
    committed = reader.committed()["p"]
    assert 60 <= committed < n, committed
    done = subprocess.run(cmd, capture_output=True, timeout=90)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    final = orjson.loads(done.stdout.splitlines()[-1])
    assert final["inSync"] and final["committed"] == {"p": n} and final["mismatches"] == 0
    assert _ids(target, index_name) == {str(i) for i in range(n)}
    replayed = [json.loads(line)["offset"] for line in (workdir / "tuples.ndjson").read_text().splitlines()]
    assert set(replayed) == set(range(n))  # every record answered at least once across the two runs
