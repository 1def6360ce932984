"""apply/destroy/approve through the CLI, with stand-in providers: the walk, its state, resuming."""

from __future__ import annotations

import json

from engine_helpers import Project, pipeline_config


def statuses(project: Project) -> dict[str, str]:
    return {a: r["status"] for a, r in project.state()["stages"].items()}


def test_apply_runs_every_stage_in_dependency_order_and_records_complete(project: Project) -> None:
    project.write(pipeline_config(targets=2, indices=2))
    r = project.run("apply", "-auto-approve", "-refresh=false", "-parallelism", "3")
    assert r.code == 0, r.err
    assert "Apply complete! Stages: 14 applied, 0 rolled back." in r.out
    st = statuses(project)
    assert len(st) == 14 and set(st.values()) == {"complete"}
    finished = {c["address"]: c["t"] for c in project.calls("applied")}
    started = {c["address"]: c["t"] for c in project.calls("apply")}
    for address, record in project.state()["stages"].items():
        for dep in record["depends_on"]:
            assert finished[dep] <= started[address], f"{address} started before {dep} finished"
    # upstream outputs reach the dependents
    assert project.state()["stages"]["metadata.src.snap1.t1.i0"]["outputs"]["upstream"] == ["snapshot.src.snap1"]
    # a second plan has nothing to do
    r = project.run("plan", "-detailed-exitcode")
    assert r.code == 0 and "No changes." in r.out


def test_failure_mid_walk_keeps_finished_stages_and_rerun_resumes(project: Project) -> None:
    project.write(pipeline_config(indices=2))
    project.control(fail={"backfill.src.snap1.t1.i0.b0": "target rejected bulk request"})
    r = project.run("apply", "-auto-approve", "-parallelism", "1")
    assert r.code == 1
    assert "backfill.src.snap1.t1.i0.b0 FAILED: target rejected bulk request" in r.err
    assert "To resume" in r.out
    st = statuses(project)
    assert st["backfill.src.snap1.t1.i0.b0"] == "failed"
    assert st["snapshot.src.snap1"] == "complete" and st["capture.src"] == "complete"
    assert "replay.src.t1" not in st  # depends on the failed backfill: never started
    assert project.state()["stages"]["backfill.src.snap1.t1.i0.b0"]["last_error"] == "target rejected bulk request"

    project.control()  # the cause is fixed
    r = project.run("plan", "-detailed-exitcode")
    assert r.code == 2
    assert "# backfill.src.snap1.t1.i0.b0 must be REPLACED" in r.out
    assert "tainted (the last run failed: target rejected bulk request)" in r.out
    assert "# capture.src" not in r.out  # finished stages are kept
    project.reset_calls()
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.out + r.err
    assert set(statuses(project).values()) == {"complete"}
    applied = {c["address"] for c in project.calls("applied")}
    assert "capture.src" not in applied and "snapshot.src.snap1" not in applied
    assert "backfill.src.snap1.t1.i0.b0" in applied and "replay.src.t1" in applied
    assert [c["address"] for c in project.calls("rollback")] == ["backfill.src.snap1.t1.i0.b0"]


def test_checkpointed_stage_resumes_from_its_checkpoint(project: Project) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    bf = "backfill.src.snap1.t1.i0.b0"
    project.control(sleep={bf: 0.3}, checkpoint=[bf], fail={bf: "worker lost"})
    assert project.run("apply", "-auto-approve").code == 1
    assert project.state()["stages"][bf]["checkpoint"] == {"done": 6}
    project.control()
    r = project.run("plan")
    assert f"# {bf} will be updated in place" in r.out and "resumes from its checkpoint" in r.out
    assert project.run("apply", "-auto-approve").code == 0
    assert project.state()["stages"][bf]["outputs"]["resumed_from"] == 6
    assert project.state()["stages"][bf]["checkpoint"] is None
    assert not project.calls("rollback")


def test_approval_gate_stops_the_walk_until_approved(project: Project) -> None:
    project.write(
        pipeline_config(indices=1, replayer=False).replace(
            "            metadata: {indices: {names: idx0}}",
            "            metadata: {indices: {names: idx0}, approval: required}",
        )
    )
    gate = "metadata.src.snap1.t1.i0"
    r = project.run("plan")
    assert f"APPROVAL GATE: the walk stops here until `mactl approve {gate}`" in r.out
    r = project.run("apply", "-auto-approve")
    assert r.code == 0
    assert f"approve with `mactl approve {gate}`" in r.out
    st = statuses(project)
    assert st[gate] == "awaiting_approval" and "backfill.src.snap1.t1.i0.b0" not in st
    assert gate not in {c["address"] for c in project.calls("apply")}

    r = project.run("approve", "backfill.src.snap1.t1.i0.b0")
    assert r.code == 1 and "not waiting for approval" in r.err
    r = project.run("approve", gate)
    assert r.code == 0 and "Approved" in r.out
    assert project.state()["stages"][gate]["approved_by"] == "tester@engine"
    r = project.run("plan")
    assert "approved by tester@engine" in r.out
    r = project.run("apply", "-auto-approve")
    assert r.code == 0
    assert set(statuses(project).values()) == {"complete"}


def test_manual_stage_completes_only_once_approved(project: Project) -> None:
    project.write(
        pipeline_config(
            indices=1,
            replayer=False,
            workflow=("  - {type: manual, name: upgrade_clients, instructions: Point every client at the target}\n"),
        )
    )
    assert project.run("apply", "-auto-approve").code == 0
    assert statuses(project)["manual.upgrade_clients"] == "awaiting_approval"
    r = project.run("approve", "manual.upgrade_clients")
    assert "Point every client at the target" in r.out
    assert project.run("apply", "-auto-approve").code == 0
    assert statuses(project)["manual.upgrade_clients"] == "complete"


def test_destroy_rolls_back_in_reverse_order(project: Project) -> None:
    project.write(pipeline_config(indices=2))
    assert project.run("apply", "-auto-approve").code == 0
    project.reset_calls()
    r = project.run("destroy", "-target", "metadata.src.snap1.t1.i1", "-auto-approve")
    assert r.code == 0, r.err
    rolled = [c["address"] for c in project.calls("rollback")]
    assert rolled == ["validate.src.t1", "replay.src.t1", "backfill.src.snap1.t1.i1.b0", "metadata.src.snap1.t1.i1"]
    r = project.run("destroy", "-auto-approve", "-parallelism", "1")
    assert r.code == 0
    rolled = [c["address"] for c in project.calls("rollback")][4:]
    assert rolled.index("snapshot.src.snap1") > rolled.index("metadata.src.snap1.t1.i0")
    assert rolled[-1] == "capture.src"
    assert project.state()["stages"] == {}


def test_apply_refuses_before_starting_when_a_stage_type_is_not_available(project: Project, monkeypatch) -> None:
    import engine_standins
    from mactl.providers import registry

    monkeypatch.setattr(engine_standins.STANDINS["validate"], "available", False)
    registry.get_provider.cache_clear()
    project.write(pipeline_config(indices=1))
    r = project.run("apply", "-auto-approve")
    assert r.code == 1
    assert "stage type 'validate' is not available yet (stages: validate.src.t1)" in r.err
    assert not project.calls("apply")
    r = project.run("apply", "-auto-approve", "-exclude", "validate.src.t1")
    assert r.code == 0


def test_apply_without_a_terminal_needs_auto_approve(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    r = project.run("apply")
    assert r.code == 1 and "no terminal to ask on" in r.err and "-auto-approve" in r.err
    assert not project.calls("apply")


def test_lifecycle_manual_rollback_is_recorded_as_left(project: Project) -> None:
    project.write(pipeline_config(indices=2, replayer=False, metadata_extra=", lifecycle: {rollback: manual}"))
    assert project.run("apply", "-auto-approve").code == 0
    project.write(
        pipeline_config(
            indices=2,
            replayer=False,
            metadata_extra=", lifecycle: {rollback: manual}, onItemFailure: continue, multiTypeMode: fail",
        )
    )
    r = project.run("plan")
    assert "rollback is MANUAL" in r.out and "Left to you (lifecycle.rollback: manual)" in r.out
    project.reset_calls()
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.err
    assert "metadata.src.snap1.t1.i0" in r.out.split("Left to you")[1]
    assert "metadata.src.snap1.t1.i0" not in {c["address"] for c in project.calls("rollback")}
    history = project.state()["history"]
    assert any(h["result"] == "left_manual" and h["address"] == "metadata.src.snap1.t1.i0" for h in history)
    assert statuses(project)["metadata.src.snap1.t1.i0"] == "complete"


def test_parallelism_bounds_concurrent_stages_and_dependencies_hold(project: Project) -> None:
    project.write(pipeline_config(targets=1, indices=4, replayer=False))
    project.control(sleep={f"metadata.src.snap1.t1.i{i}": 0.3 for i in range(4)})
    r = project.run("apply", "-auto-approve", "--parallelism", "2")
    assert r.code == 0
    spans = {}
    for c in project.calls():
        if c["op"] in ("apply", "applied"):
            spans.setdefault(c["address"], {})[c["op"]] = c["t"]
    events = sorted([(s["apply"], 1) for s in spans.values()] + [(s["applied"], -1) for s in spans.values()])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2  # the four metadata stages ran two at a time, never more


def test_progress_display_reports_rate_and_eta() -> None:
    import io
    import time

    from mactl.providers.base import Progress
    from rich.console import Console

    from mactl.apply.display import ApplyDisplay

    buffer = io.StringIO()
    display = ApplyDisplay(Console(file=buffer, width=120), live=False)
    display.started("backfill.a", "create")
    display.progress("backfill.a", Progress(done=0, total=1000, unit="docs"))
    time.sleep(0.2)
    display.progress("backfill.a", Progress(done=200, total=1000, unit="docs"))
    rate, eta = display.rate_and_eta("backfill.a")
    assert rate is not None and 400 < rate < 1100
    assert eta is not None and 0.7 < eta < 2.1
    table = display._table()
    assert table.row_count == 1
    display.finished("backfill.a", "ok")
    assert "backfill.a: Creating..." in buffer.getvalue()
    assert "backfill.a: Creation complete after" in buffer.getvalue()


def test_a_gated_stage_is_not_rolled_back_for_a_replace_before_its_approval(project: Project) -> None:
    config = pipeline_config(indices=1, replayer=False, metadata_extra=", approval: required")
    gate = "metadata.src.snap1.t1.i0"
    project.write(config)
    assert project.run("apply", "-auto-approve").code == 0
    assert project.run("approve", gate).code == 0
    assert project.run("apply", "-auto-approve").code == 0
    assert {r["status"] for r in project.state()["stages"].values()} == {"complete"}

    project.write(config.replace("names: idx0", "names: idx0-v2"))
    project.reset_calls()
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.err
    assert not project.calls("rollback")  # nothing undone before the approval
    st = project.state()["stages"]
    assert st[gate]["status"] == "awaiting_approval"
    assert st["backfill.src.snap1.t1.i0.b0"]["status"] == "complete"

    assert project.run("approve", gate).code == 0
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.err
    assert [c["address"] for c in project.calls("rollback")] == ["validate.src.t1", "backfill.src.snap1.t1.i0.b0", gate]
    st = project.state()["stages"]
    assert {r["status"] for r in st.values()} == {"complete"}
    assert st[gate]["inputs"]["indices"][0]["names"] == ["idx0-v2"]


def test_removing_a_stage_that_only_waited_at_its_gate_calls_no_rollback(project: Project) -> None:
    project.write(
        pipeline_config(
            indices=1,
            replayer=False,
            workflow=("  - {type: manual, name: upgrade_clients, instructions: Point every client at the target}\n"),
        )
    )
    assert project.run("apply", "-auto-approve").code == 0
    project.write(pipeline_config(indices=1, replayer=False))
    project.reset_calls()
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.err
    assert not project.calls("rollback")
    assert "manual.upgrade_clients" not in project.state()["stages"]


def test_a_stage_with_errors_is_recorded_complete_with_errors_and_not_run_again(project: Project) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    bf = "backfill.src.snap1.t1.i0.b0"
    errors = {
        "deadLettered": 3,
        "indices": {"idx0": {"deadLettered": 3, "topReasons": "mapper_parsing_exception 3"}},
        "summary": "3 document(s) dead-lettered: idx0 3 (mapper_parsing_exception 3)",
    }
    project.control(outputs={bf: {"completeWithErrors": errors}})
    r = project.run("apply", "-auto-approve", "-refresh=false")
    assert r.code == 0, r.err
    assert "Apply complete with errors!" in r.out and "(1 with errors)" in r.out
    assert f"{bf}: 3 document(s) dead-lettered" in r.out
    assert "idx0: 3 dead-lettered (mapper_parsing_exception 3)" in r.out
    st = statuses(project)
    assert st[bf] == "complete_with_errors"
    assert {s for a, s in st.items() if a != bf} == {"complete"}  # its dependents ran
    history = [h for h in project.state()["history"] if h["address"] == bf]
    assert history[-1]["result"] == "ok with errors" and errors["summary"] in history[-1]["detail"]
    status = project.run("status", "--json")
    assert status.code == 0, status.err
    row = next(s for s in json.loads(status.out)["stages"] if s["address"] == bf)
    assert row["status"] == "complete_with_errors" and row["errors"] == errors["summary"]
    # unchanged inputs: nothing to do, and the status stays visible
    project.control()
    r = project.run("plan", "-detailed-exitcode")
    assert r.code == 0 and "No changes." in r.out
    assert statuses(project)[bf] == "complete_with_errors"
