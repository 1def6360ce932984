"""A backfill's workers as a Kubernetes Indexed Job: build it, start or scale it, watch it, delete it.

The Job's pods run `mactl worker ADDR --from-env`: the stage's `JobSpec` travels in the pod
template as JSON with every secret left out (`JobSpec.without_secrets`), and the secrets go
into a Secret of their own that the pods reference by key (`secretKeyRef`), so no credential
is ever in the Job spec. The workers coordinate through the leases in the working-state
index, exactly as local worker processes do; the Job only decides how many run and where.

Progress comes from the leases (the same ledger as local workers), pod phases from the API.
A pod that dies mid-shard is replaced by the Job controller; its shard is taken over once
its lease expires. The Job (and its Secret) is deleted when the stage finishes, fails, is
cancelled or rolled back; a Job left behind by a killed `mactl apply` is adopted by the next
apply: scaled in place when only `replicas` changed, recreated when its pod template did.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mactl.backfill.coordinator import LeaseWatch, StageRun
from mactl.backfill.prepare import lease_store, prepare
from mactl.backfill.progress import RateTracker, Snapshot, summarise
from mactl.backfill.source import open_snapshot_repository
from mactl.backfill.spec import JobSpec
from mactl.errors import ProviderError
from mactl.schema.executor import KubernetesExecutor

SPEC_ENV = "MACTL_JOB_SPEC"
SECRET_ENV_PREFIX = "MACTL_SECRET__"
WORKER_NAME_ENV = "MACTL_WORKER_NAME"
MANAGED_BY = {"app.kubernetes.io/managed-by": "mactl"}
STAGE_LABEL = "mactl.io/stage"
ADDRESS_ANNOTATION = "mactl.io/address"
TEMPLATE_ANNOTATION = "mactl.io/template-digest"
POLL_S = 1.0
PODS_EVERY_S = 3.0
DELETE_TIMEOUT_S = 120.0
COMPLETE_TIMEOUT_S = 60.0
# Pod failures the Job absorbs (a killed pod, a node drained) before it gives up, per replica.
FAILURES_PER_REPLICA = 3


def job_name(address: str) -> str:
    """A stable DNS-1123 name for the stage's Job: the same address always finds the same Job."""
    return f"mactl-{address.split('.', 1)[0]}-{hashlib.sha1(address.encode()).hexdigest()[:12]}"


def secret_env_name(path: str) -> str:
    """The environment variable a secret at `path` (e.g. `target.auth.password`) reaches a pod in."""
    return SECRET_ENV_PREFIX + path.replace(".", "__")


def secrets_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Inside a pod: the secrets its Secret-fed variables carry, by their path in the spec."""
    return {
        name[len(SECRET_ENV_PREFIX) :].replace("__", "."): value
        for name, value in env.items()
        if name.startswith(SECRET_ENV_PREFIX)
    }


def spec_from_env(env: Mapping[str, str]) -> JobSpec:
    """Inside a pod: the `JobSpec` from the template's JSON and the Secret-fed variables."""
    public = env.get(SPEC_ENV)
    if not public:
        raise ProviderError(f"{SPEC_ENV} is not set: `--from-env` is for pods of a mactl Job")
    return JobSpec.with_secrets(public.encode(), secrets_from_env(env))


@dataclass(frozen=True)
class JobObjects:
    """The manifests apply submits: the Job, and the Secret its pods read credentials from."""

    name: str
    namespace: str
    job: dict[str, Any]
    secret: dict[str, Any] | None

    @property
    def template_digest(self) -> str:
        return str(self.job["metadata"]["annotations"][TEMPLATE_ANNOTATION])


def build_job(address: str, executor: KubernetesExecutor, spec: JobSpec) -> JobObjects:
    """The Job (and Secret) for the backfill stage `address`; pure, so plan and tests can look."""
    # The stage's throughput cap is split between the pods: each gets 1/replicas of it. Without
    # a cap the share changes nothing, and is left at 1 so that scaling keeps the template.
    share = executor.replicas if spec.max_throughput_mbps else 1
    public, secrets = spec.shared_by(share).without_secrets()
    return build_indexed_job(
        address,
        executor,
        command=["mactl", "worker", address, "--from-env", "--json"],
        spec_env=SPEC_ENV,
        public_spec=public,
        secrets=secrets,
    )


def build_indexed_job(
    address: str,
    executor: KubernetesExecutor,
    *,
    command: list[str],
    spec_env: str,
    public_spec: bytes,
    secrets: Mapping[str, str],
) -> JobObjects:
    """The Indexed Job whose `replicas` pods run `command` with the stage's spec (without its
    secrets) in `spec_env`, and the Secret each of `secrets` (path → value) reaches them from."""
    name = job_name(address)
    labels = {**MANAGED_BY, STAGE_LABEL: name}
    secret_name = f"{name}-credentials"
    env: list[dict[str, Any]] = [
        {"name": spec_env, "value": public_spec.decode()},
        {"name": WORKER_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    env += [
        {"name": secret_env_name(path), "valueFrom": {"secretKeyRef": {"name": secret_name, "key": path}}}
        for path in sorted(secrets)
    ]
    env += [{"name": k, "value": v} for k, v in sorted(executor.env.items())]
    container: dict[str, Any] = {
        "name": "worker",
        "image": executor.image,
        "command": command,
        "env": env,
    }
    if executor.secretRefs:
        container["envFrom"] = [{"secretRef": {"name": ref}} for ref in executor.secretRefs]
    if executor.resources is not None:
        container["resources"] = executor.resources.model_dump(exclude_none=True)
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if executor.serviceAccount:
        pod_spec["serviceAccountName"] = executor.serviceAccount
    if executor.nodeSelector:
        pod_spec["nodeSelector"] = dict(executor.nodeSelector)
    template = {"metadata": {"labels": labels}, "spec": pod_spec}
    digest = hashlib.sha256(orjson.dumps(template, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": executor.namespace,
            "labels": labels,
            "annotations": {ADDRESS_ANNOTATION: address, TEMPLATE_ANNOTATION: digest},
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": executor.replicas,
            "parallelism": executor.replicas,
            "backoffLimit": FAILURES_PER_REPLICA * executor.replicas,
            "template": template,
        },
    }
    secret = None
    if secrets:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": executor.namespace, "labels": labels},
            "type": "Opaque",
            "stringData": dict(secrets),
        }
    return JobObjects(name, executor.namespace, job, secret)


def api_client(executor: KubernetesExecutor, config_dir: Path | None = None, *, retries: int | None = None) -> Any:
    """A client for the executor's cluster: its `kubeconfig` (relative to the config's folder),
    else KUBECONFIG or ~/.kube/config, else the in-cluster service account.

    `retries` overrides urllib3's connection retries (the preflight asks once, so a dead
    API server costs one timeout, not four)."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise ProviderError(
            "executor kubernetes needs the kubernetes client", hint="pip install 'mactl[kubernetes]'"
        ) from None
    path = str(Path(executor.kubeconfig).expanduser()) if executor.kubeconfig else None
    if path and config_dir is not None and not Path(path).is_absolute():
        path = str(config_dir / path)
    try:
        configuration = client.Configuration()
        if path or os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().is_file():
            config.load_kube_config(config_file=path, context=executor.context, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        if retries is not None:
            configuration.retries = retries
        return client.ApiClient(configuration)
    except (ConfigException, OSError) as exc:
        where = f"kubeconfig {path}" if path else "the default kubeconfig or in-cluster config"
        raise ProviderError(f"executor kubernetes: cannot load {where}: {exc}") from None


@dataclass
class JobControl:
    """The stage's Job on the cluster: create or adopt, scale, look, delete."""

    api: Any  # kubernetes.client.ApiClient
    namespace: str
    name: str
    log: Callable[[str], None] = lambda _m: None
    _pod_phases: dict[str, str] = field(default_factory=dict)

    @property
    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api)

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def read(self) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.batch.read_namespaced_job(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def submit(self, objects: JobObjects) -> str:
        """Create the Job, or adopt the one a killed apply left: scale it when only the replica
        count differs, recreate it when its pod template does. Returns what was done.

        A refusal by the API server (a namespace or quota gone since the preflight) is one
        line naming the Job, not the client's dump of headers."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._submit(objects)
        except ApiException as exc:
            raise api_refusal(exc, f"Job {self.namespace}/{self.name}") from None

    def _submit(self, objects: JobObjects) -> str:
        existing = self.read()
        if existing is not None:
            annotations = existing.metadata.annotations or {}
            if annotations.get(TEMPLATE_ANNOTATION) == objects.template_digest and not _finished(existing):
                self._put_secret(objects)
                wanted = objects.job["spec"]["parallelism"]
                if existing.spec.parallelism == wanted:
                    return f"adopted Job {self.namespace}/{self.name} ({wanted} replicas)"
                self.scale(wanted)
                return f"scaled Job {self.namespace}/{self.name} from {existing.spec.parallelism} to {wanted} replicas"
            self.delete()
        self._put_secret(objects)
        created = self.batch.create_namespaced_job(self.namespace, objects.job)
        if objects.secret is not None:  # the Secret goes with its Job (garbage collection)
            owner = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": self.name,
                "uid": created.metadata.uid,
            }
            self.core.patch_namespaced_secret(
                objects.secret["metadata"]["name"], self.namespace, {"metadata": {"ownerReferences": [owner]}}
            )
        return f"created Job {self.namespace}/{self.name} ({objects.job['spec']['parallelism']} replicas)"

    def scale(self, replicas: int) -> None:
        """An Indexed Job scales by changing completions and parallelism together."""
        self.batch.patch_namespaced_job(
            self.name, self.namespace, {"spec": {"completions": replicas, "parallelism": replicas}}
        )

    def _put_secret(self, objects: JobObjects) -> None:
        from kubernetes.client.exceptions import ApiException

        if objects.secret is None:
            return
        name = objects.secret["metadata"]["name"]
        try:
            self.core.create_namespaced_secret(self.namespace, objects.secret)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.patch_namespaced_secret(name, self.namespace, {"stringData": objects.secret["stringData"]})

    def pods(self) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={self.name}").items)

    def report_pods(self) -> dict[str, str]:
        """Each pod's phase (with its exit code once it ended); logs every change."""
        phases: dict[str, str] = {}
        for pod in self.pods():
            phase = str(pod.status.phase or "Pending")
            for status in pod.status.container_statuses or []:
                if status.state is not None and status.state.terminated is not None:
                    phase = f"{phase} (exit {status.state.terminated.exit_code})"
            phases[pod.metadata.name] = phase
            if self._pod_phases.get(pod.metadata.name) != phase:
                self.log(f"pod {pod.metadata.name}: {phase}")
        self._pod_phases = phases
        return phases

    def failure(self) -> str | None:
        """The Job's Failed condition, if the Job controller gave up on it."""
        job = self.read()
        for condition in (job.status.conditions or []) if job is not None and job.status else []:
            if condition.type == "Failed" and condition.status == "True":
                return f"{condition.reason}: {condition.message}"
        return None

    def wait_complete(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.read()
            if job is None or _finished(job):
                return True
            time.sleep(POLL_S)
        return False

    def exit_codes(self) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        for pod in self.pods():
            index = int((pod.metadata.annotations or {}).get("batch.kubernetes.io/job-completion-index", -1))
            for status in pod.status.container_statuses or []:
                if status.state is not None and status.state.terminated is not None:
                    found.setdefault(index, []).append(int(status.state.terminated.exit_code))
        return found

    def delete(self, timeout: float = DELETE_TIMEOUT_S) -> bool:
        """Delete the Job, its pods and its Secret, and wait until the pods are gone (so no
        worker writes after this returns). False when there was nothing to delete."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.delete_namespaced_job(self.name, self.namespace, propagation_policy="Foreground")
            existed = True
        except ApiException as exc:
            if exc.status != 404:
                raise
            existed = False
        try:
            self.core.delete_namespaced_secret(f"{self.name}-credentials", self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.read() is None and not self.pods():
                return existed
            time.sleep(POLL_S)
        raise ProviderError(
            f"Job {self.namespace}/{self.name} is still there {timeout:.0f}s after it was deleted",
            hint="look at its pods (kubectl get pods -l job-name=...); a node that is gone keeps them",
        )

    def pod_log_tail(self, lines: int = 12) -> str:
        """The last lines of the newest failed pod's log, where the cluster serves logs."""
        failed = [p for p in self.pods() if p.status.phase == "Failed"]
        if not failed:
            return ""
        newest = max(failed, key=lambda p: p.metadata.creation_timestamp)
        try:
            text = self.core.read_namespaced_pod_log(newest.metadata.name, self.namespace, tail_lines=lines)
        except Exception:  # noqa: BLE001 - a log is an extra: not every node serves one
            return ""
        return f"\nLast lines of pod {newest.metadata.name}:\n{text}"


def api_refusal(exc: Any, what: str) -> ProviderError:
    """An `ApiException` as one line: the status and the API server's own message."""
    message = str(exc.reason or "")
    try:
        body = orjson.loads(exc.body or b"{}")
        if isinstance(body, dict) and body.get("message"):
            message = str(body["message"])
    except orjson.JSONDecodeError:
        pass
    return ProviderError(f"{what}: the API server refused it (HTTP {exc.status}): {' '.join(message.split())}")


def _finished(job: Any) -> bool:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return True
    return False


def delete_stage_job(address: str, executor: KubernetesExecutor, *, config_dir: Path | None = None) -> bool:
    """Delete the stage's Job (rollback, destroy); True when there was one."""
    control = JobControl(api_client(executor, config_dir), executor.namespace, job_name(address))
    return control.delete()


def run_job(
    spec: JobSpec,
    executor: KubernetesExecutor,
    *,
    config_dir: Path | None = None,
    on_progress: Callable[[Snapshot, RateTracker], None] = lambda _s, _r: None,
    cancelled: threading.Event | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> StageRun:
    """Run the stage to completion with its workers as a Job; returns the final look at the leases."""
    cancelled = cancelled or threading.Event()
    store = lease_store(spec)
    prepare(spec, open_snapshot_repository(spec.repository), store)
    objects = build_job(spec.address, executor, spec)
    control = JobControl(api_client(executor, config_dir), objects.namespace, objects.name, log)
    rates = RateTracker()
    snap = summarise(store.units())
    if snap.units_done == snap.units_total:
        if control.read() is not None:
            control.delete()
        on_progress(snap, rates)
        return StageRun(snap)
    log(control.submit(objects))
    watch = LeaseWatch(store, spec, log)
    stopped = f"{spec.address}: cancelled; the Job is deleted, a rerun resumes from the checkpoints"
    pods_looked = 0.0
    try:
        for snap in watch.looks(cancelled, rates, on_progress, stopped, POLL_S):
            if snap.units_done == snap.units_total:
                break
            if time.monotonic() - pods_looked >= PODS_EVERY_S:
                pods_looked = time.monotonic()
                control.report_pods()
                if (why := control.failure()) is not None:
                    raise ProviderError(
                        f"{spec.address}: the Job {objects.namespace}/{objects.name} failed ({why}); "
                        f"{snap.units_total - snap.units_done} shard(s) unfinished" + control.pod_log_tail(),
                        hint="fix the cause and apply again: finished shards are kept",
                    )
        if not control.wait_complete(COMPLETE_TIMEOUT_S):
            log(f"every shard is done but the Job did not complete in {COMPLETE_TIMEOUT_S:.0f}s; deleting it")
        control.report_pods()
        codes = control.exit_codes()
    finally:
        try:
            control.delete()
            log(f"deleted Job {objects.namespace}/{objects.name}")
        except Exception as exc:  # noqa: BLE001 - never hide why the stage stopped
            log(f"could not delete Job {objects.namespace}/{objects.name}: {exc}; rollback deletes it")
    return StageRun(snap, codes)
