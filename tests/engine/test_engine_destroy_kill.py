"""kill -9 of `mactl destroy` in mid-rollback: the state says the rollback was interrupted.

Before, a rollback wrote nothing to the state until it ended (the record was removed), so
a destroy killed while a provider was undoing a stage left that stage recorded as
`complete`: `mactl plan` then said "No changes" over a half-deleted backfill, and an
apply would not redo it. Now the walker records `rolling_back` before the provider runs:
the plan replaces the stage (never resuming its old checkpoint), and the next destroy
finishes the rollback. The destroy runs as a real separate process (`standin_main.py`),
so the kill lands between the real walker's state writes.
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

MAIN = Path(__file__).resolve().parent / "standin_main.py"
BACKFILL = "backfill.src.snap1.t1.i0.b0"


def _destroy_killed_in_rollback_of(project: Project, address: str, *args: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(MAIN), "destroy", "-auto-approve", *args],
        cwd=project.root,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "destroy ended before the rollback could be killed"
            if any(c["address"] == address for c in project.calls("rollback")):
                time.sleep(0.2)
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"{address} was never rolled back")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    lock = project.root / ".mactl" / "state.json.lock"
    assert project.run("force-unlock", json.loads(lock.read_text())["id"], "--yes").code == 0


def test_kill_9_mid_rollback_records_it_and_plan_and_destroy_finish_it(project: Project) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    assert project.run("apply", "-auto-approve", "-refresh=false").code == 0
    project.control(rollback_sleep={BACKFILL: 60})
    _destroy_killed_in_rollback_of(project, BACKFILL)

    doc = project.stored()
    assert doc is not None
    assert doc.stages[BACKFILL].status == "rolling_back"
    assert doc.stages[BACKFILL].outputs  # kept: the rerun needs them to find what the stage made
    assert "validate.src.t1" not in doc.stages  # rolled back before the kill
    assert doc.stages["metadata.src.snap1.t1.i0"].status == "complete"  # not reached

    project.control()
    r = project.run("plan", "-refresh=false", "-detailed-exitcode")
    assert r.code == 2, r.out + r.err
    assert "No changes" not in r.out
    assert f"# {BACKFILL} must be REPLACED" in r.out and "its rollback was interrupted" in r.out
    said = r.out + r.err
    assert "a destroy did not finish" in said and f"1 with an interrupted rollback ({BACKFILL})" in said
    assert "Run `mactl destroy` again to finish it" in said
    r = project.run("status")
    assert r.code == 0 and "rolling_back" in r.out

    project.reset_calls()
    r = project.run("destroy", "-auto-approve")
    assert r.code == 0, r.out + r.err
    assert "destroy: its interrupted rollback finishes" in r.out
    rolled = [c["address"] for c in project.calls("rollback")]
    assert rolled[0] == BACKFILL and len(rolled) == len(set(rolled))
    assert project.stored() is not None and project.stored().stages == {}  # type: ignore[union-attr]


def test_an_apply_after_a_killed_rollback_redoes_the_stage_and_never_resumes_its_checkpoint(
    project: Project,
) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    project.control(sleep={BACKFILL: 0.3}, checkpoint=[BACKFILL], fail={BACKFILL: "worker lost"})
    assert project.run("apply", "-auto-approve", "-refresh=false").code == 1
    assert project.state()["stages"][BACKFILL]["checkpoint"] == {"done": 6}  # an apply would resume it
    project.control(rollback_sleep={BACKFILL: 60})
    _destroy_killed_in_rollback_of(project, BACKFILL, "-target", BACKFILL)
    project.control()
    project.reset_calls()
    r = project.run("apply", "-auto-approve", "-refresh=false")
    assert r.code == 0, r.out + r.err
    assert [c["address"] for c in project.calls("rollback")] == [BACKFILL]  # finished first
    assert BACKFILL in {c["address"] for c in project.calls("applied")}
    record = project.state()["stages"][BACKFILL]
    assert record["status"] == "complete" and record["outputs"].get("resumed_from") is None
    r = project.run("plan", "-refresh=false")
    assert "No changes." in r.out and "did not finish" not in r.out + r.err  # the apply redid what it undid


def test_a_destroy_that_finished_leaves_no_warning_and_a_stopped_one_does(project: Project) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    assert project.run("apply", "-auto-approve", "-refresh=false").code == 0
    assert project.run("destroy", "-auto-approve", "-target", "validate.src.t1").code == 0
    r = project.run("plan", "-refresh=false")
    assert "did not finish" not in r.out + r.err  # a -target destroy that ended: nothing unfinished
    project.control(fail_rollback={BACKFILL: "target refused the delete"})
    r = project.run("destroy", "-auto-approve")
    assert r.code == 1 and f"{BACKFILL} FAILED: target refused the delete" in r.err
    # a destroy says how to finish it (not "run `mactl apply` again", not "kept in the state")
    assert "To finish: fix the cause and run `mactl destroy` again" in r.out and "mactl apply` again" not in r.out
    assert "rolled back and removed from the state" in r.out
    r = project.run("plan", "-refresh=false")
    assert "a destroy did not finish (started" in r.out + r.err and "rolls back " in r.out + r.err
