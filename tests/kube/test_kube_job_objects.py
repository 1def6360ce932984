"""The Job and Secret a kubernetes executor submits, looked at without a cluster: what a pod
gets is the stage's spec whole, and the Job carries none of its secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mactl.providers.backfill import BackfillProvider
from pydantic import ValidationError

from mactl.backfill.spec import build_spec
from mactl.executors.kubernetes import build_job, job_name, spec_from_env
from mactl.schema.backfill import BackfillInputs

PASSWORD = "s3cr3t-value-9f2c"
ADDRESS = "backfill.src.snap1.t1.m0.b0"


def _inputs(*, drop: tuple[str, ...] = (), extra: dict[str, Any] | None = None, **executor: Any) -> BackfillInputs:
    data: dict[str, Any] = {
        "target": {
            "name": "t1",
            "endpoint": "https://target:9200",
            "auth": {"type": "basic", "username": "admin", "password": PASSWORD},
        },
        "repository": {"type": "s3", "bucket": "snaps", "basePath": "p"},
        "snapshotName": "snap1",
        "maxThroughputMbps": 90,
        "deadLetter": {"location": "s3://dl/x"},
        "executor": {"type": "kubernetes", "image": "mactl:1", "replicas": 3, **executor},
        **(extra or {}),
    }
    for key in drop:
        data.pop(key)
    return BackfillInputs.model_validate(data)


def _pod_env(job: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    """The environment a kubelet would give the pod: values, and Secret keys resolved."""
    env: dict[str, str] = {}
    for var in job["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[var["name"]] = secret["stringData"][ref["key"]]
    return env


def test_the_job_carries_no_secret_and_the_pod_rebuilds_the_whole_spec(tmp_path: Path) -> None:
    inputs = _inputs(secretRefs=["aws-credentials"], env={"AWS_REGION": "eu-west-1"})
    spec = build_spec(ADDRESS, inputs, workdir=tmp_path)
    objects = build_job(ADDRESS, inputs.executor, spec)
    assert PASSWORD not in json.dumps(objects.job)
    assert objects.secret is not None and PASSWORD in json.dumps(objects.secret)
    job_spec = objects.job["spec"]
    assert (job_spec["completionMode"], job_spec["parallelism"], job_spec["completions"]) == ("Indexed", 3, 3)
    container = job_spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["mactl", "worker", ADDRESS, "--from-env", "--json"]
    assert container["envFrom"] == [{"secretRef": {"name": "aws-credentials"}}]
    rebuilt = spec_from_env(_pod_env(objects.job, objects.secret))
    assert rebuilt == spec.shared_by(3)  # each of the 3 pods sends a third of the stage's cap
    assert rebuilt.target.auth.password is not None and rebuilt.target.auth.password.get_secret_value() == PASSWORD


def test_scaling_keeps_the_pod_template_unless_a_throughput_cap_is_shared(tmp_path: Path) -> None:
    capped = _inputs()
    spec = build_spec(ADDRESS, capped, workdir=tmp_path)
    three = build_job(ADDRESS, capped.executor, spec)
    five = build_job(ADDRESS, _inputs(replicas=5).executor, spec)
    assert three.name == five.name == job_name(ADDRESS)
    assert three.template_digest != five.template_digest  # the cap's share is in the template
    uncapped = build_spec(ADDRESS, capped.model_copy(update={"maxThroughputMbps": None}), workdir=tmp_path)
    assert (
        build_job(ADDRESS, capped.executor, uncapped).template_digest
        == build_job(ADDRESS, _inputs(replicas=5).executor, uncapped).template_digest
    )


def test_validate_names_what_pods_cannot_reach() -> None:
    inputs = _inputs(drop=("deadLetter",), extra={"transforms": [{"kind": "jinja", "file": "t.j2"}]})
    problems = BackfillProvider().validate(inputs)
    assert any("transforms[0]" in p and "t.j2" in p for p in problems), problems
    assert any("deadLetter.location" in p for p in problems), problems


@pytest.mark.parametrize(
    "executor, message",
    [
        ({"env": {"MACTL_JOB_SPEC": "x"}}, "is set by mactl"),
        ({"namespace": "Not_A_Name"}, "namespace"),
        ({"replicas": 0}, "replicas"),
        ({"secretRefs": ["bad name"]}, "secretRefs"),
    ],
)
def test_bad_executor_settings_are_refused(executor: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _inputs(**executor)
