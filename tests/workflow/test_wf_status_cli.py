"""`mactl status` and `mactl audit` as a user meets them before anything ran, and their errors.

No cluster is needed: both commands read only the config and the state. Each bad input
must give one clear message, a non-zero exit and no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from wf_helpers import mactl  # type: ignore[import-not-found]

from mactl.audit.checks import check_replay

CONFIG = """
targets: [{name: a, endpoint: "http://127.0.0.1:1"}, {name: b, endpoint: "http://127.0.0.1:2"}]
source-migration-configurations:
  - source: {name: es, endpoint: "http://127.0.0.1:3", snapshotRepository: {type: fs, location: /snapshots}}
    snapshot-and-migration-configs:
      - name: snap
        approval: required
        migrations: [{name: m0, metadata: {}, documentBackfillConfigs: [{name: b0}]}]
"""


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "mactl.yaml").write_text(CONFIG)
    return tmp_path


def test_status_lists_every_stage_pending_with_the_approval_it_waits_for(tmp_path: Path) -> None:
    run = mactl(_folder(tmp_path), "status", "--json")
    assert run.code == 0, run.err
    data = json.loads(run.out)
    stages = {s["address"]: s for s in data["stages"]}
    assert set(stages) == {
        "snapshot.es.snap",
        "metadata.es.snap.a.m0",
        "metadata.es.snap.b.m0",
        "backfill.es.snap.a.m0.b0",
        "backfill.es.snap.b.m0.b0",
        "validate.es.a",
        "validate.es.b",
    }
    assert list(stages)[0] == "snapshot.es.snap" and list(stages)[-1].startswith("validate.")  # dependency order
    assert {s["status"] for s in stages.values()} == {"pending"}
    assert data["pendingApprovals"] == ["snapshot.es.snap"]
    assert stages["validate.es.b"]["clone_of"] == "validate.es.a"
    table = mactl(tmp_path, "status")
    assert table.code == 0 and "validate.es.b" in table.out and "pending" in table.out


def test_status_rejects_watch_with_json(tmp_path: Path) -> None:
    run = mactl(_folder(tmp_path), "status", "--watch", "--json")
    assert run.code != 0 and "--watch and --json" in run.err and "Traceback" not in run.err


def test_audit_before_any_validation_says_so(tmp_path: Path) -> None:
    run = mactl(_folder(tmp_path), "audit")
    assert run.code != 0 and "no validation report in the state yet" in run.err and "Traceback" not in run.err
    named = mactl(tmp_path, "audit", "validate.es.nope")
    assert named.code != 0 and "ADDR: no stage 'validate.es.nope'" in named.err and "Traceback" not in named.err
    both = mactl(tmp_path, "audit", "--json", "--markdown")
    assert both.code != 0 and "--json and --markdown" in both.err


def test_audit_names_a_stage_that_is_not_a_validate_stage(tmp_path: Path) -> None:
    from mactl.state.document import StageRecord, StateDocument

    folder = _folder(tmp_path)
    doc = StateDocument(stages={"snapshot.es.snap": StageRecord(type="snapshot", status="complete")})
    (folder / ".mactl").mkdir()
    (folder / ".mactl" / "state.json").write_text(doc.model_dump_json())
    run = mactl(folder, "audit", "snapshot.es.snap")
    assert run.code != 0 and "is a snapshot stage" in run.err and "Traceback" not in run.err


def _tuples(path: Path, rows: list[tuple[int, int, bool]]) -> Path:
    with path.open("wb") as fh:
        for i, (src, tgt, match) in enumerate(rows):
            fh.write(
                orjson.dumps(
                    {
                        "method": "PUT",
                        "sourceTime": 100.0 + i,
                        "replayedAt": 100.5 + i,
                        "match": match,
                        "source": {"status": src, "latencyMs": 10.0},
                        "target": {"status": tgt, "latencyMs": 25.0},
                    }
                )
                + b"\n"
            )
    return path


def test_replay_check_uses_the_threshold_and_reports_ratio_and_lag(tmp_path: Path) -> None:
    rows = [(201, 200, True)] * 97 + [(200, 500, False)] * 3
    path = _tuples(tmp_path / "tuples.ndjson", rows)
    ok = check_replay("replay.es.a", {"tuples": str(path)}, 0.97, None)
    assert ok["passed"] and ok["statusMatchRate"] == 0.97 and ok["identicalStatusRate"] == 0.0
    assert ok["latencyRatio"] == 2.5 and ok["mismatchedStatuses"] == {"PUT 200→500": 3}
    assert ok["lag"][0] == [100.5, 0.5]
    strict = check_replay("replay.es.a", {"tuples": str(path)}, 0.99, 2.0)
    assert (
        not strict["passed"]
        and "status match 97.00% < 99.00%" in strict["detail"]
        and "latency ratio 2.50 > 2.00" in strict["detail"]
    )
    missing = check_replay("replay.es.a", {"tuples": str(tmp_path / "nope.ndjson")}, 0.99, None)
    assert not missing["passed"] and "missing" in missing["detail"]


def test_status_watch_redraws_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    folder = _folder(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mactl", "status", "--watch", "--interval", "0.2"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait for the first frame rather than a fixed time: on a loaded machine the import alone
    # can take seconds, and a SIGINT before the handler is installed is a traceback.
    import threading

    chunks: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: stdout.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while "".join(chunks).count("validate.es.b") < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)  # into a pipe, each redraw is printed as it happens
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    reader.join(timeout=10)
    out, err = "".join(chunks), proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0 and "Traceback" not in err  # Ctrl-C ends a watch; it is not an error
    assert out.count("validate.es.b") >= 3 and "pending" in out, out
