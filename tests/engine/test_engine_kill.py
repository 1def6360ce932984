"""kill -9 of `mactl apply` in mid-stage: valid state, the stage tainted, a rerun finishes.

The apply runs as a real separate process (`standin_main.py` is the real CLI with the
stand-in providers swapped in), so the kill hits the real walker between state writes.
Ctrl-C (SIGINT) once and twice are checked the same way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine_helpers import Project, pipeline_config

from mactl.errors import StateError

MAIN = Path(__file__).resolve().parent / "standin_main.py"
SLOW = "backfill.src.snap1.t1.i0.b0"


def _spawn(project: Project, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    return subprocess.Popen(
        [sys.executable, str(MAIN), *args],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _wait_running(project: Project, proc: subprocess.Popen[str], address: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"apply ended early: {proc.communicate()}")
        if any(c["address"] == address for c in project.calls("apply")):
            try:
                doc = project.stored()  # state.json and its journal, merged
            except StateError as err:  # must never happen: writes are atomic, a torn tail is skipped
                raise AssertionError(f"the state was not readable mid-apply: {err}") from None
            record = doc.stages.get(address) if doc is not None else None
            if record is not None and record.status == "running":
                time.sleep(0.3)  # let it make some progress inside the stage
                return
        time.sleep(0.05)
    raise AssertionError(f"{address} never started running")


def test_kill_9_mid_stage_leaves_valid_state_a_tainted_stage_and_a_rerun_finishes(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    project.control(sleep={SLOW: 60})
    proc = _spawn(project, "apply", "-auto-approve", "-refresh=false")
    _wait_running(project, proc, SLOW)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    doc = project.stored()  # valid JSON and a valid document, journal included
    assert doc is not None
    assert doc.stages[SLOW].status == "running"
    assert doc.stages["metadata.src.snap1.t1.i0"].status == "complete"

    # the dead process's lock is still there, as Terraform's would be; remove it by ID
    r = project.run("plan")
    assert r.code == 1 and "lock" in r.err
    lock_id = json.loads((project.root / ".mactl" / "state.json.lock").read_text())["id"]
    assert project.run("force-unlock", lock_id, "--yes").code == 0

    project.control()
    r = project.run("plan")
    assert r.code == 0
    assert f"# {SLOW} must be REPLACED" in r.out and "tainted (interrupted while running)" in r.out
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.err
    assert {s["status"] for s in project.state()["stages"].values()} == {"complete"}


def test_ctrl_c_once_finishes_running_stages_twice_taints_them(project: Project) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    project.control(sleep={SLOW: 60})
    proc = _spawn(project, "apply", "-auto-approve", "-refresh=false")
    _wait_running(project, proc, SLOW)
    proc.send_signal(signal.SIGINT)  # graceful: the stand-in honours ctx.cancelled and returns
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "stopping gracefully" in out
    st = project.state()["stages"]
    assert st[SLOW]["status"] == "complete" and "validate.src.t1" not in st
    assert not (project.root / ".mactl" / "state.json.lock").exists()  # released

    project.write(pipeline_config(indices=1, replayer=False, backfill_extra=", maxBatchDocs: 3"))
    project.control(sleep={SLOW: 60}, ignore_cancel=[SLOW])
    proc = _spawn(project, "apply", "-auto-approve", "-refresh=false")
    _wait_running(project, proc, SLOW)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # at once
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert project.state()["stages"][SLOW]["status"] == "tainted"
    assert not (project.root / ".mactl" / "state.json.lock").exists()
    project.control()
    r = project.run("plan")
    assert "tainted (status tainted)" in r.out
