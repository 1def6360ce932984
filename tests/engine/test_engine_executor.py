"""The executor choice in plans: what `plan` shows of a Kubernetes Job, and that scaling it is
an update in place (the stage resumes; nothing is rolled back or written again)."""

from __future__ import annotations

import json
from collections.abc import Callable

from engine_helpers import Project, pipeline_config

BF = "backfill.src.snap1.t1.i0.b0"


def _config(replicas: int) -> str:
    executor = f"{{type: kubernetes, namespace: migrations, image: 'registry.example/mactl:1.4', replicas: {replicas}}}"
    return pipeline_config(
        indices=1, replayer=False, backfill_extra=f", executor: {executor}, deadLetter: {{location: 's3://dl/x'}}"
    )


def _job_in_plan_then_scaled_in_place(project: Project, address: str, config: Callable[[int], str]) -> list[str]:
    """Plan shows `address`'s Job with 2 replicas; after apply, 3 replicas plan and apply as an
    update in place, nothing rolled back. Returns the addresses that second apply applied."""
    project.write(config(2))
    shown = project.plan_document()
    assert shown.code == 0, shown.err
    (change,) = [c for c in json.loads(shown.out)["resource_changes"] if c["address"] == address]
    executor = change["change"]["after"]["executor"]
    assert (executor["kind"], executor["namespace"], executor["replicas"], executor["image"]) == (
        "Job",
        "migrations",
        2,
        "registry.example/mactl:1.4",
    )
    assert project.run("apply", "-auto-approve").code == 0
    project.reset_calls()
    project.write(config(3))
    text = project.run("plan")
    assert f"# {address} will be updated in place" in text.out, text.out
    assert "executor.replicas" in text.out and "must be replaced" not in text.out
    assert project.run("apply", "-auto-approve").code == 0
    assert not project.calls("rollback")
    assert project.state()["stages"][address]["inputs"]["executor"]["replicas"] == 3
    return [c["address"] for c in project.calls("applied")]


def test_plan_shows_the_job_and_a_replicas_change_is_an_update_in_place(project: Project) -> None:
    assert _job_in_plan_then_scaled_in_place(project, BF, _config) == [BF]


def test_a_backfill_without_an_executor_keeps_its_inputs_as_before(project: Project) -> None:
    project.write(pipeline_config(indices=1, replayer=False))
    plan = json.loads(project.plan_document().out)
    (change,) = [c for c in plan["resource_changes"] if c["address"] == BF]
    assert "executor" not in change["change"]["after"]


RP = "replay.src.t1"


def _replay_config(replicas: int) -> str:
    executor = f"{{type: kubernetes, namespace: migrations, image: 'registry.example/mactl:1.4', replicas: {replicas}}}"
    source = (
        "    capture: {log: {type: kafka, bootstrapServers: 'kafka:9092', topic: capture, partitions: 4}}\n"
        f"    replayer-config: {{maxSpeedupFactor: 2.0, executor: {executor}}}\n"
    )
    return pipeline_config(indices=1, replayer=False, extra_source=source)


def test_a_replay_job_is_in_the_plan_and_scaling_it_is_an_update_in_place(project: Project) -> None:
    assert RP in _job_in_plan_then_scaled_in_place(project, RP, _replay_config)


def test_plan_warns_when_replayer_pods_outnumber_the_capture_partitions(project: Project) -> None:
    project.write(_replay_config(6))
    shown = project.run("plan")
    assert shown.code == 0, shown.err
    assert "replayer-config.executor.replicas: 6 replayer pods share the capture topic's 4 partition(s)" in (
        shown.out + shown.err
    )
    project.write(_replay_config(4))
    assert "nothing to replay" not in (lambda r: r.out + r.err)(project.run("plan"))
