"""The state lock around a real `mactl apply` process (issue 15 items 6–7): a run killed
with -9 leaves a stale lock that the next apply takes over when asked; a run whose lock
is force-unlocked and taken by someone else stops its stages and writes nothing more."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine_helpers import Project, pipeline_config
from mactl.state import open_backend

MAIN = Path(__file__).resolve().parent / "standin_main.py"
SLOW = "backfill.src.snap1.t1.i0.b0"


def _spawn(project: Project, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(MAIN), *args],
        cwd=project.root,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _wait_running(project: Project, proc: subprocess.Popen[str], address: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"apply ended early: {proc.communicate()}")
        doc = project.stored()  # state.json and its journal, merged
        record = doc.stages.get(address) if doc is not None else None
        if record is not None and record.status == "running":
            time.sleep(0.3)
            return
        time.sleep(0.05)
    raise AssertionError(f"{address} never started running")


def test_apply_takes_over_the_lock_of_a_killed_apply_when_asked(project: Project) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    project.control(sleep={SLOW: 60})
    proc = _spawn(project, "apply", "-auto-approve", "-refresh=false")
    _wait_running(project, proc, SLOW)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    lock = json.loads((project.root / ".mactl" / "state.json.lock").read_text())

    r = project.run("lock", "status")
    assert f"GONE — its process (pid {proc.pid}) no longer runs" in r.out
    r = project.run("apply", "-auto-approve")
    assert r.code == 1 and "-lock-takeover-stale" in r.err  # not without being asked
    project.control()
    r = project.run("apply", "-auto-approve", "-lock-takeover-stale")
    assert r.code == 0, r.err
    assert f"Took over the stale state lock {lock['id']}" in r.err
    doc = project.state()
    assert {s["status"] for s in doc["stages"].values()} == {"complete"}
    takeover = [e for e in doc["history"] if e["operation"] == "lock takeover"]
    assert len(takeover) == 1 and lock["id"] in takeover[0]["detail"] and "for apply" in takeover[0]["detail"]
    assert not (project.root / ".mactl" / "state.json.lock").exists()


def test_an_apply_whose_lock_is_taken_stops_its_stages_and_writes_nothing_more(project: Project) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    project.control(sleep={SLOW: 60})
    proc = _spawn(project, "apply", "-auto-approve", "-refresh=false", MACTL_LOCK_HEARTBEAT_S="0.5")
    _wait_running(project, proc, SLOW)
    lock = json.loads((project.root / ".mactl" / "state.json.lock").read_text())
    backend = open_backend(None, base_dir=project.root)
    backend.force_unlock(lock["id"])
    began = time.monotonic()
    with backend.lock("apply") as ours:
        before = backend.read()
        out, err = proc.communicate(timeout=30)  # stopped well before its 60 s stage would end
        took = time.monotonic() - began
        after = backend.read()
    assert proc.returncode == 1, (out, err)
    assert took < 15
    message = f"the state lock was taken by {ours.who} (pid {ours.pid}, 'apply', lock {ours.id}) at {ours.created_at}"
    assert message[:1].upper() + message[1:] + ": stopping" in err
    assert before is not None and after is not None and after.serial == before.serial  # nothing written after
    assert after.stages[SLOW].status == "running"  # left for the next plan to see as interrupted
    assert "Traceback" not in err, err
