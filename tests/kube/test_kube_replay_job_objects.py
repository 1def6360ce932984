"""The replay Job a kubernetes executor submits, looked at without a cluster: the pods get
the stage's whole replay spec back (password from the Secret), the Job carries no secret,
and a file capture log is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mactl.providers.replay import ReplayProvider, group_name

from mactl.capture.spec import ReplaySpec
from mactl.executors.kubernetes import job_name
from mactl.executors.kubernetes_replay import build_replay_job, replay_spec_from_env, status_index_name
from mactl.schema.replay import ReplayInputs
from mactl.transforms import parse_spec

PASSWORD = "s3cr3t-replay-4be1"
ADDRESS = "replay.src.t1"


def _inputs(log: dict[str, Any] | None = None, **executor: Any) -> ReplayInputs:
    return ReplayInputs.model_validate(
        {
            "source": {"name": "src", "endpoint": "http://source:9200"},
            "target": {
                "name": "t1",
                "endpoint": "https://target:9200",
                "auth": {"type": "basic", "username": "admin", "password": PASSWORD},
            },
            "log": log or {"type": "kafka", "bootstrapServers": "kafka:9092", "topic": "capture", "partitions": 4},
            "maxThroughputMbps": 40,
            "transforms": [{"kind": "jinja", "template": "{{ request | tojson }}"}],
            "executor": {"type": "kubernetes", "image": "mactl:1", "replicas": 2, **executor},
        }
    )


def _spec(inputs: ReplayInputs) -> ReplaySpec:
    return ReplaySpec.from_inputs(
        inputs,
        log=inputs.log,
        group=group_name(ADDRESS),
        start={"0": 5},
        resume=False,
        workdir=Path("/apply-host/work"),
        config_dir=None,
        start_time=None,
    )


def test_the_pods_rebuild_the_spec_and_the_job_carries_no_secret() -> None:
    inputs = _inputs(secretRefs=["aws-credentials"])
    spec = _spec(inputs)
    assert inputs.executor is not None and inputs.executor.type == "kubernetes"
    objects = build_replay_job(ADDRESS, inputs.executor, spec)
    assert objects.name == job_name(ADDRESS)
    assert PASSWORD not in json.dumps(objects.job)
    assert objects.secret is not None and objects.secret["stringData"] == {"target.auth.password": PASSWORD}
    job_spec = objects.job["spec"]
    assert (job_spec["completionMode"], job_spec["parallelism"], job_spec["completions"]) == ("Indexed", 2, 2)
    container = job_spec["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "mactl", "replay", "run", "--from-env", "--json",
        "--status-index", status_index_name(ADDRESS),
        "--tuples-topic", f"capture.{job_name(ADDRESS)}.tuples",
    ]  # fmt: skip
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            env[var["name"]] = objects.secret["stringData"][var["valueFrom"]["secretKeyRef"]["key"]]
    rebuilt = replay_spec_from_env(env)
    assert rebuilt.target.auth.password is not None and rebuilt.target.auth.password.get_secret_value() == PASSWORD
    # All pods in the stage's group, from its committed offsets (apply sets them), without the
    # apply host's paths, each with half of the stage's throughput cap.
    assert (rebuilt.group, rebuilt.start, rebuilt.resume, rebuilt.workdir) == (group_name(ADDRESS), None, True, None)
    assert rebuilt.maxThroughputMbps == 20
    assert rebuilt.log == spec.log and rebuilt.transforms == spec.transforms


def test_a_file_log_or_a_template_file_is_refused_with_a_kubernetes_replayer() -> None:
    problems = ReplayProvider().validate(_inputs(log={"type": "file", "path": "/var/capture"}))
    assert problems == ["executor: a Kubernetes replayer needs a kafka capture log; log.type is file"]
    with_file = _inputs().model_copy(update={"transforms": [parse_spec("t.j2")]})
    assert any("transforms[0]" in p and "t.j2" in p for p in ReplayProvider().validate(with_file))
    assert ReplayProvider().validate(_inputs()) == []
