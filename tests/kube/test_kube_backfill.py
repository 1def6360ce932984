"""Backfill workers as a Kubernetes Job, against a real kube-apiserver and Job controller.

The control plane is kube-apiserver and kube-controller-manager built from the Go modules,
on etcd; the pods run as local processes on the harness's node (`devtools.kube.node`), so
every worker really runs `mactl worker ADDR --from-env` and writes to the OpenSearch 2.x
target. What lands there is compared with the live ES 7.10.2 source, document by document.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from bf_fixtures import SourceSnapshot, scan_docs, stage_address
from kube_helpers import IMAGE, Kube, assert_the_password_is_only_in_the_secret, wait_for_the_image_build
from opensearchpy import OpenSearch

from mactl.backfill.prepare import lease_store
from mactl.backfill.source import snapshot_uuid
from mactl.backfill.spec import build_spec
from mactl.executors.kubernetes import JobControl, build_job, job_name
from mactl.schema.backfill import BackfillInputs

pytestmark = [pytest.mark.cluster, pytest.mark.kube, pytest.mark.slow]

DRIVER = Path(__file__).resolve().parent.parent / "backfill" / "bf_driver.py"


def _inputs(src: SourceSnapshot, kube: Kube, tmp: Path, replicas: int, **extra: Any) -> dict[str, Any]:
    return {
        "target": {"name": "target", "endpoint": src.os_url},
        "repository": {"type": "fs", "location": str(src.repo_dir)},
        "snapshotName": src.snapshot,
        "indices": [{"names": [src.index]}],
        "leaseSeconds": 3,
        "deadLetter": {"location": str(tmp / "dead-letters")},
        "executor": {
            "type": "kubernetes",
            "image": "mactl:test",
            "replicas": replicas,
            "kubeconfig": str(kube.kubeconfig),
            "env": {"MACTL_BACKFILL_CHECKPOINT_S": "0.3"},
        },
        **extra,
    }


def _start(tmp: Path, inputs: dict[str, Any], address: str, op: str = "apply") -> subprocess.Popen[str]:
    path = tmp / f"inputs-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(inputs))
    return subprocess.Popen(
        [sys.executable, str(DRIVER), op, str(path), str(tmp / "work"), address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen[str], op: str = "apply", timeout: float = 240) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"stage {op} failed:\n{err[-3000:]}"
    return dict(json.loads(out.strip().splitlines()[-1]))


def _units(inputs: dict[str, Any], address: str, tmp: Path) -> list[dict[str, Any]]:
    model = BackfillInputs.model_validate(inputs)
    spec = build_spec(address, model, workdir=tmp, snapshot_uuid=snapshot_uuid(model.repository, model.snapshotName))
    return [dict(r.body) for r in lease_store(spec).units()]


def _control(kube: Kube, address: str) -> JobControl:
    return JobControl(kube.api(), "default", job_name(address))


def test_three_replicas_move_the_index_exactly_and_the_job_is_deleted(
    source_snapshot: SourceSnapshot, target: OpenSearch, kube: Kube, tmp_path: Path
) -> None:
    address = stage_address()
    inputs = _inputs(source_snapshot, kube, tmp_path, replicas=3, maxBatchDocs=100)
    outputs = _finish(_start(tmp_path, inputs, address))
    expected = scan_docs(OpenSearch(source_snapshot.es_url, timeout=60), source_snapshot.index)
    assert scan_docs(target, source_snapshot.index) == expected  # ids, routing and _source, byte for byte
    assert outputs["indices"][source_snapshot.index]["written"] == len(expected)
    assert outputs["differences"] == []
    # Every shard was written by a pod of the stage's Job, and the Job is gone afterwards.
    holders = {c["holder"].split(":", 1)[0] for u in _units(inputs, address, tmp_path) for c in u["claims"]}
    assert holders and all(h.startswith(job_name(address) + "-") for h in holders), holders
    control = _control(kube, address)
    assert control.read() is None and control.pods() == []


def test_a_pod_killed_mid_shard_is_replaced_and_its_lease_taken_over(
    source_snapshot: SourceSnapshot, target: OpenSearch, kube: Kube, tmp_path: Path
) -> None:
    address = stage_address()
    inputs = _inputs(source_snapshot, kube, tmp_path, replicas=2, maxBatchDocs=50, maxThroughputMbps=0.5)
    proc = _start(tmp_path, inputs, address)
    control = _control(kube, address)
    victim: dict[str, Any] | None = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            units = _units(inputs, address, tmp_path)
        except Exception:  # noqa: BLE001 - the working state may not exist yet
            continue
        victim = next((u for u in units if u["status"] == "leased" and u.get("cursor")), None)
    assert victim is not None, "no shard was ever checkpointed mid-way"
    pod = victim["holder"].split(":", 1)[0]
    # What `kubectl delete pod --grace-period=0 --force` does: the node kills the worker at once.
    from kubernetes import client

    client.CoreV1Api(kube.api()).delete_namespaced_pod(
        pod, "default", body=client.V1DeleteOptions(grace_period_seconds=0)
    )
    outputs = _finish(proc)
    expected = scan_docs(OpenSearch(source_snapshot.es_url, timeout=60), source_snapshot.index)
    assert scan_docs(target, source_snapshot.index) == expected
    assert outputs["indices"][source_snapshot.index]["written"] >= len(expected)
    (after,) = [
        u for u in _units(inputs, address, tmp_path) if u["index"] == victim["index"] and u["shard"] == victim["shard"]
    ]
    takeovers = [c for c in after["claims"] if (c.get("took_over") or "").startswith(pod + ":")]
    assert takeovers, f"the killed pod's shard was not taken over: {after['claims']}"
    assert not takeovers[0]["holder"].startswith(pod + ":")
    assert control.read() is None


def test_rollback_of_a_killed_apply_deletes_the_job_then_the_documents(
    source_snapshot: SourceSnapshot, target: OpenSearch, kube: Kube, tmp_path: Path
) -> None:
    address = stage_address()
    inputs = _inputs(source_snapshot, kube, tmp_path, replicas=2, maxBatchDocs=50, maxThroughputMbps=0.5)
    proc = _start(tmp_path, inputs, address)
    control = _control(kube, address)
    deadline = time.monotonic() + 120
    written = 0
    while written == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        if target.indices.exists(index=source_snapshot.index):
            target.indices.refresh(index=source_snapshot.index)
            written = int(target.count(index=source_snapshot.index)["count"])
    assert written > 0, "the Job's workers wrote nothing"
    os.killpg(proc.pid, signal.SIGKILL)  # mactl dies; the Job and its pods go on writing
    proc.communicate()
    assert control.read() is not None and control.pods()
    _finish(_start(tmp_path, inputs, address, op="rollback"), op="rollback")
    assert control.read() is None and control.pods() == []
    time.sleep(2)  # a worker still running would write again by now
    exists = target.indices.exists(index=source_snapshot.index)
    if exists:
        target.indices.refresh(index=source_snapshot.index)
    assert not exists or target.count(index=source_snapshot.index)["count"] == 0


def test_the_job_spec_carries_no_secret_values_and_scales_in_place(
    source_snapshot: SourceSnapshot, kube: Kube, tmp_path: Path
) -> None:
    address = stage_address()
    password = f"pw-{uuid.uuid4().hex}"
    inputs = _inputs(source_snapshot, kube, tmp_path, replicas=2)
    inputs["target"]["auth"] = {"type": "basic", "username": "admin", "password": password}
    # A node selector no node has: the pods stay Pending, so this looks at the objects only.
    inputs["executor"]["nodeSelector"] = {"mactl.io/no-such-node": "true"}
    model = BackfillInputs.model_validate(inputs)
    assert model.executor is not None and model.executor.type == "kubernetes"
    spec = build_spec(address, model, workdir=tmp_path)
    control = _control(kube, address)
    try:
        assert control.submit(build_job(address, model.executor, spec)).startswith("created Job")
        first = control.read()
        ref = assert_the_password_is_only_in_the_secret(control, first, password, pods=2)
        # `replicas` 2 → 3 on the Job a killed apply left: the same Job, scaled.
        scaled = model.model_copy(update={"executor": model.executor.model_copy(update={"replicas": 3})})
        assert scaled.executor is not None and scaled.executor.type == "kubernetes"
        done = control.submit(build_job(address, scaled.executor, spec))
        assert done.startswith("scaled Job") and "from 2 to 3" in done
        after = control.read()
        assert after.metadata.uid == first.metadata.uid
        assert (after.spec.parallelism, after.spec.completions) == (3, 3)
    finally:
        control.delete()
    assert control.read() is None
    from kubernetes import client

    with pytest.raises(Exception, match="Not Found"):
        client.CoreV1Api(control.api).read_namespaced_secret(ref["name"], "default")


def test_pods_run_in_the_image_built_from_the_containerfile(
    source_snapshot: SourceSnapshot, target: OpenSearch, kube: Kube, tmp_path: Path
) -> None:
    """The Job's pods run `mactl` from the image `scripts/image build` made from ./Containerfile
    (its root, user and PATH), not this checkout's, and still move the index exactly."""
    import tempfile

    from kubernetes import client

    wait_for_the_image_build()
    image_id = subprocess.run(
        ["podman", "--storage-driver", "vfs", "image", "inspect", "--format", "{{.Id}}", IMAGE],
        capture_output=True,
        text=True,
    )
    assert image_id.returncode == 0, (
        f"no image {IMAGE}: `scripts/image build` makes it (scripts/test logs it in .ci-logs/image-build.log): {image_id.stderr.strip()}"
    )
    # Somewhere the image's unprivileged user (uid 10001) can write and the node shares (/tmp).
    dead = Path(tempfile.mkdtemp(prefix="mactl-kube-image-dl-"))
    dead.chmod(0o777)
    address = stage_address()
    inputs = _inputs(source_snapshot, kube, tmp_path, replicas=2, maxBatchDocs=100)
    inputs["executor"]["image"] = IMAGE
    inputs["deadLetter"] = {"location": str(dead)}
    seen: dict[str, str] = {}
    proc = _start(tmp_path, inputs, address)
    api = client.CoreV1Api(kube.api())
    while proc.poll() is None:  # record what the node says each pod ran in
        for pod in api.list_namespaced_pod("default", label_selector=f"job-name={job_name(address)}").items:
            for status in pod.status.container_statuses or []:
                if status.image_id:
                    seen[pod.metadata.name] = status.image_id
        time.sleep(0.3)
    outputs = _finish(proc)
    expected = scan_docs(OpenSearch(source_snapshot.es_url, timeout=60), source_snapshot.index)
    assert scan_docs(target, source_snapshot.index) == expected
    assert outputs["indices"][source_snapshot.index]["written"] == len(expected)
    assert seen and set(seen.values()) == {image_id.stdout.strip()}, seen
    # The workers were the image's: its PATH led to its /opt/mactl, and they ran as its user.
    for pod in seen:
        log = (kube.pods / f"default_{pod}" / "log").read_text()
        assert f"running in image {IMAGE}" in log, log[-2000:]
        assert "in_image: exec /opt/mactl/bin/mactl as uid 10001 " in log, log[-2000:]
    holders = {c["holder"].split(":", 1)[0] for u in _units(inputs, address, tmp_path) for c in u["claims"]}
    assert holders <= set(seen), (holders, seen)
