"""The preflight asks the API server before apply rolls anything back (a Kubernetes executor).

A backfill or replay on `executor: kubernetes` needs a kubeconfig that loads, an API server
that answers, the namespace, the service account and Secrets its pods reference, and the
right to create and delete the Job. On the real control plane (RBAC, a second user bound to
nothing): each missing piece is named in one line, and `mactl apply` of a change that would
replace a finished local backfill with a Kubernetes one refuses before the rollback, leaving
every document and the state as they were; once the namespace exists, the same apply runs
the Job and the documents arrive.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kube_helpers import Kube

from mactl.executors.kubernetes_preflight import job_problems
from mactl.schema.executor import KubernetesExecutor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))
from test_wf_preflight import INLINE, Incremental  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.kube]


def _executor(kube: Kube, **extra: Any) -> KubernetesExecutor:
    return KubernetesExecutor.model_validate(
        {"type": "kubernetes", "image": "mactl:test", "kubeconfig": str(kube.kubeconfig), **extra}
    )


def test_each_missing_piece_of_a_job_is_named_by_the_api_server(kube: Kube, tmp_path: Path) -> None:
    from kubernetes import client

    uid = uuid.uuid4().hex[:6]
    ns = f"pf-{uid}"
    assert job_problems(_executor(kube), None, 5.0) == []
    where = f"executor kubernetes (namespace {ns})"
    assert job_problems(_executor(kube, namespace=ns), None, 5.0) == [f"{where}: namespace {ns} does not exist"]

    core = client.CoreV1Api(kube.api())
    core.create_namespace({"metadata": {"name": ns}})
    try:
        wanting = _executor(kube, namespace=ns, serviceAccount="migrator", secretRefs=["aws-creds"])
        assert job_problems(wanting, None, 5.0) == [
            f"{where}: service account migrator does not exist (the Job's pods could not be created)",
            f"{where}: secret aws-creds (in secretRefs) does not exist (the pods could not start)",
        ]
        core.create_namespaced_service_account(ns, {"metadata": {"name": "migrator"}})
        core.create_namespaced_secret(ns, {"metadata": {"name": "aws-creds"}, "stringData": {"K": "v"}})
        assert job_problems(wanting, None, 5.0) == []

        # RBAC's answer for a user bound to nothing, asked through SelfSubjectAccessReview
        unbound = _executor(kube, namespace=ns, kubeconfig=str(kube.restricted))
        assert job_problems(unbound, None, 5.0) == [
            f"{where}: not allowed to create jobs, get jobs, patch jobs, delete jobs, create secrets, "
            f"patch secrets, delete secrets, list pods in namespace {ns}"
        ]
    finally:
        core.delete_namespace(ns)

    dead = tmp_path / "kubeconfig-dead"
    dead.write_text(_with_port(kube.kubeconfig.read_text(), 1))
    (problem,) = job_problems(_executor(kube, kubeconfig=str(dead)), None, 5.0)
    assert problem.startswith(
        "executor kubernetes (namespace default): the API server https://127.0.0.1:1 is not reachable"
    )
    (problem,) = job_problems(_executor(kube, kubeconfig=str(tmp_path / "none")), None, 5.0)
    assert problem.startswith(f"executor kubernetes: cannot load kubeconfig {tmp_path / 'none'}")


def _with_port(kubeconfig: str, port: int) -> str:
    import json

    doc = json.loads(kubeconfig)
    for entry in doc["clusters"]:
        server = entry["cluster"]["server"]
        entry["cluster"]["server"] = server.rsplit(":", 1)[0] + f":{port}"
    return json.dumps(doc)


def test_apply_refuses_before_rolling_back_a_backfill_it_could_not_run_on_kubernetes(
    tmp_path: Path, es710: Any, os2: Any, kube: Kube
) -> None:
    import wf_data  # type: ignore[import-not-found]
    from kubernetes import client
    from wf_data import docs_of  # type: ignore[import-not-found]

    project = Incremental.make(tmp_path, es710, os2, "kp")
    ns = f"{project.prefix}-ns"
    backfill = f"backfill.{project.prefix}.snap.os2.m0.b0"
    core = client.CoreV1Api(kube.api())

    def on_kubernetes(kubeconfig: Path) -> str:
        executor = f"{{type: kubernetes, image: 'mactl:test', namespace: {ns}, kubeconfig: '{kubeconfig}'}}"
        transform = INLINE.replace("{{ _source | tojson }}", '{{ dict(_source, moved="k8s") | tojson }}')
        return project.base.replace(
            INLINE,
            transform + f"                executor: {executor}\n                deadLetter: {{location: dead}}\n",
        )

    wf_data.load(es710.url, project.prefix)
    try:
        applied = project.run("apply", "-auto-approve")
        assert applied.code == 0, applied.out[-2000:] + applied.err[-2000:]
        migrated = docs_of(os2.url, project.index)
        assert len(migrated) == 400
        state_before = project.run("state", "pull").out

        project.write(on_kubernetes(kube.kubeconfig))
        assert project.run("validate").code == 0
        planned = project.run("plan")
        assert planned.code == 0 and f"{backfill} must be REPLACED" in planned.out, planned.out + planned.err
        missing = f"{backfill}: executor kubernetes (namespace {ns}): namespace {ns} does not exist"
        assert f"preflight: {missing} (apply will refuse" in planned.out + planned.err
        refused = project.run("apply", "-auto-approve")
        assert refused.code == 1 and "Traceback" not in refused.err, refused.out + refused.err
        assert "preflight failed: 1 problem(s); nothing was rolled back or changed" in refused.err
        assert missing in refused.err
        assert docs_of(os2.url, project.index) == migrated
        assert project.run("state", "pull").out == state_before

        core.create_namespace({"metadata": {"name": ns}})
        project.write(on_kubernetes(kube.restricted))
        refused = project.run("apply", "-auto-approve")
        assert refused.code == 1 and "not allowed to create jobs" in refused.err, refused.out + refused.err
        assert docs_of(os2.url, project.index) == migrated

        project.write(on_kubernetes(kube.kubeconfig))
        moved = project.run("apply", "-auto-approve")
        assert moved.code == 0, moved.out[-3000:] + moved.err[-3000:]
        after = docs_of(os2.url, project.index)
        assert after == {i: {**doc, "moved": "k8s"} for i, doc in migrated.items()}
    finally:
        project.write(project.base)
        project.cleanup()
        if core.list_namespace(field_selector=f"metadata.name={ns}").items:
            core.delete_namespace(ns)


def test_a_refusal_at_run_time_is_one_line_naming_the_job(kube: Kube) -> None:
    """What the preflight cannot foresee (a namespace deleted since, a quota) still ends as one
    line with the API server's reason, not the client's dump of response headers."""
    from mactl.errors import ProviderError
    from mactl.executors.kubernetes import JobControl, build_indexed_job

    ns = f"gone-{uuid.uuid4().hex[:6]}"
    executor = _executor(kube, namespace=ns)
    objects = build_indexed_job(
        "backfill.x.y", executor, command=["true"], spec_env="SPEC", public_spec=b"{}", secrets={"p": "pw"}
    )
    control = JobControl(kube.api(), ns, objects.name)
    with pytest.raises(ProviderError) as refused:
        control.submit(objects)
    assert refused.value.message == (
        f'Job {ns}/{objects.name}: the API server refused it (HTTP 404): namespaces "{ns}" not found'
    )
