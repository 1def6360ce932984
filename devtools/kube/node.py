"""The local node: a process runner standing in for kubelet (and for the scheduler's one choice).

It registers a Node, binds every pending pod whose `nodeSelector` matches the node's labels to
itself (the only node there is, so that is all a scheduler would do; resource requests are
not weighed), and for each pod bound to it starts the first container's `command` + `args` as
a local process with the pod's environment: plain values, `secretKeyRef` / `configMapKeyRef`
read through the API, `fieldRef` from the pod, `envFrom` Secrets and ConfigMaps.

Images are not pulled. When the pod's image is in this machine's podman storage (built here by
`scripts/image build`), the command runs inside that image's root filesystem (`in_image.py`:
an overlay of the image per pod, the image's user, environment and working folder, host
network) and the container status carries the image's ID, as a kubelet reports it. Any
other image name runs the command with this machine's programs (the PATH the node was started
with), which is why most tests point the Job at the test interpreter's `mactl`.

It reports what a kubelet reports: phase Running with a running container status, then
Succeeded or Failed with the exit code. A pod being deleted gets SIGTERM, SIGKILL after its
grace period, and is then removed for good; a pod removed at once (grace 0) is killed at once.
Each pod's output goes to `<pods>/<namespace>_<name>/log`.

It polls the API every half second rather than watching: fewer moving parts, and a test
cluster has a handful of pods.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

POLL_S = 0.5


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


IN_IMAGE = Path(__file__).with_name("in_image.py")
PODMAN = ("podman", "--storage-driver", "vfs")  # the storage `scripts/image build` writes


@dataclass(frozen=True)
class LocalImage:
    """An image in podman's storage, mounted: where its root is and what its config says."""

    image_id: str
    root: str
    env: dict[str, str]
    user: str
    workdir: str


def local_image(name: str) -> LocalImage | None:
    """The image `name` if podman holds it here (mounted read-only for the pods), else None."""
    if not name or shutil.which(PODMAN[0]) is None:
        return None
    found = subprocess.run([*PODMAN, "image", "inspect", name], capture_output=True, text=True)
    if found.returncode != 0:
        return None
    info = json.loads(found.stdout)[0]
    mounted = subprocess.run([*PODMAN, "image", "mount", name], capture_output=True, text=True, check=True)
    config_ = info.get("Config") or {}
    env = dict(item.split("=", 1) for item in config_.get("Env") or [] if "=" in item)
    return LocalImage(
        image_id=str(info["Id"]),
        root=mounted.stdout.strip(),
        env=env,
        user=str(config_.get("User") or ""),
        workdir=str(config_.get("WorkingDir") or "/"),
    )


class EnvNotReady(Exception):
    """A Secret or ConfigMap the pod's environment refers to is not there (yet)."""


@dataclass
class Running:
    pod: Any
    process: subprocess.Popen[bytes]
    started_at: str
    image_id: str = ""
    reported_exit: bool = False
    kill_at: float | None = None
    labels: dict[str, str] = field(default_factory=dict)


class LocalNode:
    def __init__(self, api: client.CoreV1Api, name: str, pods_dir: Path, shares: list[str] | None = None) -> None:
        self.api = api
        self.shares = list(shares or [])  # host folders every pod sees at the same path
        self.name = name
        self.pods_dir = pods_dir
        self.running: dict[str, Running] = {}
        self.labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "mactl.io/local-node": "true",
        }

    # -- the Node object ---------------------------------------------------------------

    def register(self) -> None:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": self.labels}}
        try:
            self.api.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        now = _now()
        cpus = str(os.cpu_count() or 1)
        resources = {"cpu": cpus, "memory": "16Gi", "pods": "110"}
        status = {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "LocalNodeReady",
                    "message": "local process runner (devtools.kube.node)",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        }
        self.api.patch_node_status(self.name, {"status": status})

    # -- scheduling ----------------------------------------------------------------------

    def bind_pending(self) -> None:
        pods = self.api.list_pod_for_all_namespaces(field_selector="spec.nodeName=,status.phase=Pending").items
        for pod in pods:
            if pod.metadata.deletion_timestamp is not None:
                continue
            wanted = pod.spec.node_selector or {}
            if any(self.labels.get(k) != v for k, v in wanted.items()):
                continue  # not for this node: stays Pending, as with a real scheduler
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod.metadata.name, "uid": pod.metadata.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
            }
            try:
                # The client cannot read a Binding back (its `target` check): skip decoding.
                self.api.create_namespaced_binding(pod.metadata.namespace, binding, _preload_content=False)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    # -- pods on this node -----------------------------------------------------------------

    def sync(self) -> None:
        pods = self.api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.name}").items
        seen: set[str] = set()
        for pod in pods:
            uid = pod.metadata.uid
            seen.add(uid)
            run = self.running.get(uid)
            if pod.metadata.deletion_timestamp is not None:
                self._terminate(pod, run)
            elif run is None and pod.status.phase == "Pending":
                self._start(pod)
            elif run is not None and not run.reported_exit and run.process.poll() is not None:
                self._report_exit(run)
        for uid in list(self.running):
            if uid not in seen:  # removed without a grace period: kill at once
                self._kill(self.running.pop(uid))

    def _start(self, pod: Any) -> None:
        container = pod.spec.containers[0]
        argv = [*(container.command or []), *(container.args or [])]
        try:
            image = local_image(container.image)
        except (subprocess.CalledProcessError, ValueError, KeyError) as exc:
            self._waiting(pod, "ErrImageNeverPull", f"cannot mount image {container.image}: {exc}")
            return
        try:
            env = self._environment(pod, container, image)
        except EnvNotReady as exc:
            self._waiting(pod, "CreateContainerConfigError", str(exc))
            return
        folder = self.pods_dir / f"{pod.metadata.namespace}_{pod.metadata.name}"
        folder.mkdir(parents=True, exist_ok=True)
        cwd: Path | str = container.working_dir or folder
        if image is not None:
            shares = [flag for path in self.shares for flag in ("--share", path)]
            argv = [
                "unshare", "--mount", "--propagation", "private",
                sys.executable, str(IN_IMAGE), "--image-root", image.root, "--pod-dir", str(folder),
                "--user", image.user, "--workdir", container.working_dir or image.workdir, *shares, "--", *argv,
            ]  # fmt: skip
            cwd = folder
        with open(folder / "log", "ab") as log:
            if image is not None:
                log.write(f"{_now()} node: running in image {container.image} ({image.image_id[:12]})\n".encode())
                log.flush()
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                self._waiting(pod, "RunContainerError", f"cannot start {argv[:1]}: {exc}")
                return
        (folder / "pid").write_text(str(process.pid))
        run = Running(pod, process, _now(), image_id=image.image_id if image is not None else "")
        self.running[pod.metadata.uid] = run
        self._patch_status(
            pod,
            {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "startTime": run.started_at,
                "conditions": self._conditions(True),
                "containerStatuses": [
                    self._container_status(
                        container, {"running": {"startedAt": run.started_at}}, ready=True, image_id=run.image_id
                    )
                ],
            },
        )

    def _report_exit(self, run: Running) -> None:
        code = run.process.returncode
        exit_code = code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a container runtime says
        container = run.pod.spec.containers[0]
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": run.started_at,
            "finishedAt": _now(),
        }
        self._patch_status(
            run.pod,
            {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "conditions": self._conditions(False),
                "containerStatuses": [
                    self._container_status(container, {"terminated": terminated}, ready=False, image_id=run.image_id)
                ],
            },
        )
        run.reported_exit = True

    def _terminate(self, pod: Any, run: Running | None) -> None:
        """A pod being deleted: SIGTERM, SIGKILL after the grace period, then remove it for good."""
        if run is not None and run.process.poll() is None:
            if run.kill_at is None:
                grace = pod.metadata.deletion_grace_period_seconds or 0
                run.kill_at = time.monotonic() + grace
                self._signal(run, signal.SIGTERM if grace else signal.SIGKILL)
                return
            if time.monotonic() < run.kill_at:
                return
            self._kill(run)
        # As kubelet does: the pod is terminal in its status first; only then does a delete
        # with grace period 0 remove it (the API keeps a running pod's grace period).
        if run is not None and not run.reported_exit:
            self._report_exit(run)
        elif run is None and pod.status.phase not in ("Succeeded", "Failed"):
            self._patch_status(pod, {"phase": "Failed", "reason": "Deleted", "conditions": self._conditions(False)})
        self.running.pop(pod.metadata.uid, None)
        try:
            self.api.delete_namespaced_pod(
                pod.metadata.name,
                pod.metadata.namespace,
                # In the body: with a body, the API reads no query parameters.
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.metadata.uid)
                ),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    @staticmethod
    def _signal(run: Running, sig: int) -> None:
        try:
            os.killpg(run.process.pid, sig)
        except ProcessLookupError:
            pass

    def _kill(self, run: Running) -> None:
        self._signal(run, signal.SIGKILL)
        run.process.wait()

    # -- the pod's environment ----------------------------------------------------------------

    def _environment(self, pod: Any, container: Any, image: LocalImage | None) -> dict[str, str]:
        if image is not None:  # the image's own environment, then the pod's, as a runtime does
            env = {"HOME": "/", **image.env}
        else:
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
            # The "image" is this machine: its programs come first from the node's own
            # environment (the virtualenv whose `mactl` the pods run).
            env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
        env["HOSTNAME"] = pod.metadata.name
        namespace = pod.metadata.namespace
        for source in container.env_from or []:
            if source.secret_ref is not None:
                data = self._secret(namespace, source.secret_ref.name, optional=bool(source.secret_ref.optional))
            elif source.config_map_ref is not None:
                data = self._config_map(namespace, source.config_map_ref.name, bool(source.config_map_ref.optional))
            else:
                continue
            env.update({f"{source.prefix or ''}{k}": v for k, v in data.items()})
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = var.value or ""
                continue
            ref = var.value_from
            if ref.secret_key_ref is not None:
                data = self._secret(namespace, ref.secret_key_ref.name, optional=bool(ref.secret_key_ref.optional))
                key = ref.secret_key_ref.key
            elif ref.config_map_key_ref is not None:
                data = self._config_map(namespace, ref.config_map_key_ref.name, bool(ref.config_map_key_ref.optional))
                key = ref.config_map_key_ref.key
            elif ref.field_ref is not None:
                env[var.name] = self._field(pod, ref.field_ref.field_path)
                continue
            else:
                continue
            if key in data:
                env[var.name] = data[key]
            elif not (ref.secret_key_ref or ref.config_map_key_ref).optional:
                raise EnvNotReady(f"couldn't find key {key} for {var.name}")
        return env

    def _secret(self, namespace: str, name: str, *, optional: bool) -> dict[str, str]:
        try:
            secret = self.api.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            if exc.status == 404:
                raise EnvNotReady(f'secret "{name}" not found') from None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def _config_map(self, namespace: str, name: str, optional: bool) -> dict[str, str]:
        try:
            return dict(self.api.read_namespaced_config_map(name, namespace).data or {})
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            if exc.status == 404:
                raise EnvNotReady(f'configmap "{name}" not found') from None
            raise

    @staticmethod
    def _field(pod: Any, path: str) -> str:
        simple = {
            "metadata.name": pod.metadata.name,
            "metadata.namespace": pod.metadata.namespace,
            "metadata.uid": pod.metadata.uid,
            "spec.nodeName": pod.spec.node_name,
            "spec.serviceAccountName": pod.spec.service_account_name,
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
        }
        if path in simple:
            return str(simple[path] or "")
        for prefix, values in (
            ("metadata.labels", pod.metadata.labels),
            ("metadata.annotations", pod.metadata.annotations),
        ):
            if path.startswith(prefix + "['") and path.endswith("']"):
                return str((values or {}).get(path[len(prefix) + 2 : -2], ""))
        return ""

    # -- status --------------------------------------------------------------------------------

    def _patch_status(self, pod: Any, status: dict[str, Any]) -> None:
        try:
            self.api.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _waiting(self, pod: Any, reason: str, message: str) -> None:
        container = pod.spec.containers[0]
        waiting = {"waiting": {"reason": reason, "message": message}}
        self._patch_status(pod, {"containerStatuses": [self._container_status(container, waiting, ready=False)]})

    @staticmethod
    def _container_status(container: Any, state: dict[str, Any], *, ready: bool, image_id: str = "") -> dict[str, Any]:
        return {
            "name": container.name,
            "image": container.image,
            "imageID": image_id,  # set when the pod ran in a local image, as a kubelet reports it
            "ready": ready,
            "started": "running" in state,
            "restartCount": 0,
            "state": state,
        }

    @staticmethod
    def _conditions(ready: bool) -> list[dict[str, Any]]:
        now = _now()
        flag = "True" if ready else "False"
        return [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": now},
        ]

    def stop_all(self) -> None:
        for run in self.running.values():
            if run.process.poll() is None:
                self._kill(run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.kube.node", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--pods", required=True, type=Path)
    parser.add_argument(
        "--share", action="append", default=[], help="a host folder pods in an image see at the same path"
    )
    args = parser.parse_args(argv)
    api = client.CoreV1Api(config.new_client_from_config(config_file=args.kubeconfig))
    node = LocalNode(api, args.name, args.pods, args.share)
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    node.register()
    last_beat = time.monotonic()
    try:
        while not stopping:
            try:
                node.bind_pending()
                node.sync()
                if time.monotonic() - last_beat > 10:
                    node.heartbeat()
                    last_beat = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the API may blink; a node keeps going
                print(f"{_now()} node loop: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            time.sleep(POLL_S)
    finally:
        node.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
