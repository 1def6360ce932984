"""A replay stage's replayers as a Kubernetes Indexed Job, judged from outside the pods.

The Job is `mactl.executors.kubernetes`'s (built by `build_indexed_job`, driven by
`JobControl`); its pods run `mactl replay run --from-env`: the stage's `ReplaySpec` travels in
the pod template as JSON without the target's password, which comes from the Job's Secret by
reference. Every pod joins the stage's Kafka consumer group, so Kafka shares the capture
topic's partitions out between them and hands a dead pod's partitions to the others, each
resumed from the group's committed offset. Before the Job starts, apply sets the group's
offsets itself (the snapshot's start position, or what a resumed run committed).

Whether the replay is in sync is decided here, not by the pods: the lag is measured from the
group's committed offsets against the topic's end offsets (the source time of the oldest
record not yet committed), and the status matches come from the status documents each pod
writes to a working index on the target (`status_index_name`); a pod that has not reported
in `FRESH_S` does not count. The exit criteria are the local replayer's: lag under
`maxLagSeconds` for `lagWindowSeconds` with no new status mismatch, every replica reporting.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from mactl.capture import log_kafka
from mactl.capture.log import Offsets, log_config
from mactl.capture.record import RecordDecodeError, decode
from mactl.capture.spec import ReplaySpec
from mactl.errors import ProviderError
from mactl.executors.kubernetes import (
    POLL_S,
    JobControl,
    JobObjects,
    api_client,
    build_indexed_job,
    job_name,
    secrets_from_env,
)
from mactl.schema.common import ClusterRef
from mactl.schema.executor import KubernetesExecutor

REPLAY_SPEC_ENV = "MACTL_REPLAY_SPEC"
PASSWORD_PATH = "target.auth.password"
PUBLISH_EVERY_S = 1.0
# A pod whose status document is older than this is not counted as replaying.
FRESH_S = 15.0
PODS_EVERY_S = 3.0
# Counters summed over every pod that ever reported: a restarted pod starts its own at 0.
SUMMED = ("replayed", "dropped", "deadLettered", "idsPinned", "mismatches", "target4xx", "bytesSent")


def status_index_name(address: str) -> str:
    """The working index on the target where the stage's pods write their status documents."""
    slug = re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")[:60]
    return f"mactl-replay-{slug}-{hashlib.sha1(address.encode()).hexdigest()[:8]}"


def tuples_log(log: Mapping[str, Any] | object, address: str) -> dict[str, Any]:
    """The Kafka topic beside the capture topic where the pods write their request tuples
    (key `tuple`) and dead letters (key `dead`): the files a local replayer keeps."""
    cfg = log_config(log)
    return {**cfg, "topic": f"{cfg.get('topic') or 'mactl-capture'}.{job_name(address)}.tuples", "partitions": 1}


def pod_spec(spec: ReplaySpec, replicas: int) -> ReplaySpec:
    """What each pod replays with: the group's committed offsets (apply sets them), no local
    paths of the apply host, and its share of the stage's throughput cap."""
    share = spec.maxThroughputMbps / replicas if spec.maxThroughputMbps else None
    return spec.model_copy(
        update={"start": None, "resume": True, "workdir": None, "transformsBaseDir": None, "maxThroughputMbps": share}
    )


def build_replay_job(address: str, executor: KubernetesExecutor, spec: ReplaySpec) -> JobObjects:
    """The Job (and Secret) for the replay stage `address`; pure, so plan and tests can look."""
    public = orjson.dumps(pod_spec(spec, executor.replicas).to_json(), option=orjson.OPT_SORT_KEYS)
    password = spec.password()
    return build_indexed_job(
        address,
        executor,
        command=[
            "mactl",
            "replay",
            "run",
            "--from-env",
            "--json",
            "--status-index",
            status_index_name(address),
            "--tuples-topic",
            tuples_log(spec.log, address)["topic"],
        ],  # fmt: skip
        spec_env=REPLAY_SPEC_ENV,
        public_spec=public,
        secrets={PASSWORD_PATH: password} if password else {},
    )


def replay_spec_from_env(env: Mapping[str, str]) -> ReplaySpec:
    """Inside a pod: the stage's `ReplaySpec`, its password from the Secret-fed variable."""
    public = env.get(REPLAY_SPEC_ENV)
    if not public:
        raise ProviderError(f"{REPLAY_SPEC_ENV} is not set: `--from-env` is for pods of a mactl replay Job")
    spec = ReplaySpec.load(orjson.loads(public))
    return spec.with_password(secrets_from_env(env).get(PASSWORD_PATH))


def target_client(spec: ReplaySpec) -> OpenSearch:
    from mactl.cluster import client_for

    target = spec.target
    ref = ClusterRef(name=target.name or "target", endpoint=target.endpoint, auth=target.auth, insecure=target.insecure)
    return client_for(ref, retry_for=0)


# -- the status board: pods write, apply reads -------------------------------------------------


@dataclass
class StatusBoard:
    """The stage's status documents on the target, one per pod (by the pod's name)."""

    client: OpenSearch
    index: str

    def create(self) -> None:
        """The index, unless there: one shard, fields kept but not indexed (only read back whole)."""
        if self.client.indices.exists(index=self.index):
            return
        body = {"settings": {"index": {"number_of_shards": 1}}, "mappings": {"dynamic": False}}
        try:
            self.client.indices.create(index=self.index, body=body)
        except TransportError as exc:
            if "resource_already_exists_exception" not in str(exc):
                raise

    def publish(self, pod: str, status: Mapping[str, Any]) -> None:
        self.client.index(index=self.index, id=pod, body={**status, "pod": pod})

    def read(self) -> list[dict[str, Any]]:
        try:
            self.client.indices.refresh(index=self.index)
            found = self.client.search(index=self.index, body={"query": {"match_all": {}}, "size": 10_000})
        except NotFoundError:
            return []
        return [dict(hit["_source"]) for hit in found["hits"]["hits"]]

    def delete(self) -> bool:
        try:
            self.client.indices.delete(index=self.index)
            return True
        except NotFoundError:
            return False


class Publisher:
    """A pod's side: the replayer's latest status goes to the board once a second, from a
    thread of its own (a slow target never holds up the replay loop)."""

    def __init__(self, board: StatusBoard, pod: str, log: Callable[[str], None] = lambda _m: None) -> None:
        self.board = board
        self.pod = pod
        self.log = log
        self._latest: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="replay-status", daemon=True)
        self._thread.start()

    def offer(self, status: Mapping[str, Any]) -> None:
        with self._lock:
            self._latest = dict(status)

    def _send(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return
        try:
            self.board.publish(self.pod, latest)
        except Exception as exc:  # noqa: BLE001 - a missed report is retried; the replay goes on
            self.log(f"status not written to {self.board.index}: {exc}")
            with self._lock:
                self._latest = self._latest or latest

    def _serve(self) -> None:
        while not self._stop.wait(PUBLISH_EVERY_S):
            self._send()

    def close(self, final: Mapping[str, Any]) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.offer(final)
        self._send()


# -- apply's side ------------------------------------------------------------------------------


@dataclass
class Look:
    """One look at the replay from outside the pods."""

    committed: Offsets
    end: Offsets
    lag_s: float
    behind: int  # records not yet committed, over all partitions
    pods: dict[str, dict[str, Any]]  # every pod that ever reported → its last status
    fresh: int  # pods that reported in the last FRESH_S

    def totals(self) -> dict[str, int]:
        return {k: sum(int(p.get(k) or 0) for p in self.pods.values()) for k in SUMMED}


def measure(view: log_kafka.GroupView) -> tuple[Offsets, Offsets, float, int]:
    """(committed, end offsets, lag in seconds, records behind) of the group: the lag is now
    minus the source time of the oldest record not yet committed, 0 when none is left."""
    first, end = view.watermarks()
    committed = view.committed()
    position = {p: committed.get(p, first.get(p, 0)) for p in end}
    waiting = {p: o for p, o in position.items() if o < end[p]}
    lag = 0.0
    if waiting:
        records = view.read_at(waiting)
        times = []
        for entry in records.values():
            try:
                times.append(decode(entry.payload).request_time)
            except RecordDecodeError:
                times.append(entry.timestamp)
        # a record the peek did not get in time is not known to be recent: not in sync yet
        lag = time.time() - min(times) if len(times) == len(waiting) else float("inf")
    return committed, end, max(0.0, lag), sum(end[p] - o for p, o in waiting.items())


def look(view: log_kafka.GroupView, board: StatusBoard) -> Look:
    """Lag from the group's committed offsets, counts from the pods' status documents."""
    committed, end, lag, behind = measure(view)
    now = time.time()
    pods = {str(d["pod"]): d for d in board.read() if d.get("pod")}
    fresh = sum(1 for d in pods.values() if now - float(d.get("updatedAt") or 0) < FRESH_S)
    return Look(committed, end, lag, behind, pods, fresh)


def set_start(log: Mapping[str, Any], group: str, start: Offsets, resume: bool, note: Callable[[str], None]) -> None:
    """Before the pods join: commit where the group starts. A resumed stage keeps what it
    committed and only fills in partitions without a commit; a new one starts at `start`
    (each partition not named in it: from its first stored record)."""
    cfg = log_config(dict(log))
    view = log_kafka.GroupView(cfg, group)
    try:
        first, _end = view.watermarks()
        committed = view.committed() if resume else {}
    finally:
        view.close()
    wanted = {p: int(start.get(p, low)) for p, low in first.items()}
    missing = {p: o for p, o in wanted.items() if p not in committed}
    if missing:
        log_kafka.set_group_offsets(cfg, group, missing)
        note(f"consumer group {group} starts at {missing}")


@dataclass
class ReplayJobRun:
    """Apply's side of a replay Job: start it, judge it, stop it."""

    address: str
    spec: ReplaySpec
    executor: KubernetesExecutor
    config_dir: Path | None = None
    log: Callable[[str], None] = lambda _m: None
    objects: JobObjects = field(init=False)
    control: JobControl = field(init=False)
    board: StatusBoard = field(init=False)

    def __post_init__(self) -> None:
        self.objects = build_replay_job(self.address, self.executor, self.spec)
        self.control = JobControl(
            api_client(self.executor, self.config_dir), self.objects.namespace, self.objects.name, self.log
        )
        self.board = StatusBoard(target_client(self.spec), status_index_name(self.address))

    def start(self, start: Offsets, resume: bool) -> None:
        """Set the group's offsets (unless the Job is already running them), then create,
        adopt or scale the Job."""
        self.board.create()
        from mactl.capture import log as capture_log

        capture_log.init_log(tuples_log(self.spec.log, self.address))
        running = self.control.read()
        if running is None or not resume:
            if running is not None:
                self.control.delete()
            set_start(self.spec.log.model_dump(), self.spec.group, start, resume, self.log)
        self.log(self.control.submit(self.objects))

    def wait_in_sync(
        self,
        timeout_s: float,
        cancelled: threading.Event,
        on_look: Callable[[Look], None] = lambda _l: None,
    ) -> Look:
        """Look every `POLL_S` until the exit criteria hold; a `ProviderError` when the Job
        fails, the stage is cancelled, or `timeout_s` runs out."""
        spec = self.spec
        view = log_kafka.GroupView(log_config(spec.log.model_dump()), spec.group)
        deadline = time.monotonic() + timeout_s
        good_since: float | None = None
        mark: int | None = None
        pods_looked = 0.0
        try:
            while True:
                seen = look(view, self.board)
                on_look(seen)
                mismatches = seen.totals()["mismatches"]
                good = seen.lag_s < spec.maxLagSeconds and seen.fresh >= self.executor.replicas
                if not good or mismatches != mark:
                    good_since, mark = None, mismatches
                elif good_since is None:
                    good_since = time.monotonic()
                if good_since is not None and time.monotonic() - good_since >= spec.lagWindowSeconds:
                    return seen
                if time.monotonic() - pods_looked >= PODS_EVERY_S:
                    pods_looked = time.monotonic()
                    self.control.report_pods()
                    if (why := self.control.failure()) is not None:
                        raise ProviderError(
                            f"replay {self.address}: the Job {self.objects.namespace}/{self.objects.name} "
                            f"failed ({why})" + self.control.pod_log_tail(),
                            hint="offsets are committed: fix the cause and apply again to resume",
                        )
                if cancelled.is_set() or time.monotonic() >= deadline:
                    why = "cancelled" if cancelled.is_set() else f"not in sync after {timeout_s:.0f}s"
                    raise ProviderError(
                        f"replay {self.address}: {why} (lag {seen.lag_s:.1f}s, {seen.behind} records behind, "
                        f"{mismatches} status mismatches, {seen.fresh}/{self.executor.replicas} pods reporting)",
                        hint="offsets are committed: re-apply resumes where it stopped",
                    )
                cancelled.wait(POLL_S)
        finally:
            view.close()

    def delete(self) -> bool:
        return self.control.delete()

    def final_look(self, before: Look) -> Look:
        """After the Job is gone: the offsets and counts its pods left (each pod reports once
        more as it stops); lag and liveness as judged while they ran."""
        view = log_kafka.GroupView(log_config(self.spec.log.model_dump()), self.spec.group)
        try:
            committed, end, _lag, behind = measure(view)
        finally:
            view.close()
        pods = {str(d["pod"]): d for d in self.board.read() if d.get("pod")}
        return Look(committed, end, before.lag_s, behind, pods or before.pods, before.fresh)


def status_of(seen: Look, in_sync: bool) -> dict[str, Any]:
    """The stage's `status` output, with a local replay's fields: counts summed over the
    pods, lag and offsets as apply measured them, and what each pod last reported."""
    return {
        **seen.totals(),
        "lagSeconds": round(seen.lag_s, 3),
        "inSync": in_sync,
        "caughtUp": seen.behind == 0,
        "behind": seen.behind,
        "committed": dict(seen.committed),
        "updatedAt": time.time(),
        "pods": {
            name: {k: doc.get(k) for k in ("replayed", "mismatches", "partitions", "updatedAt")}
            for name, doc in sorted(seen.pods.items())
        },
    }


def job_summary(address: str, executor: KubernetesExecutor) -> dict[str, Any]:
    """What the outputs and the fleet registry record of the Job (never a credential)."""
    return {
        "kind": "Job",
        "namespace": executor.namespace,
        "name": job_name(address),
        "replicas": executor.replicas,
        "image": executor.image,
    }


def registry_entry(
    address: str, spec: ReplaySpec, executor: KubernetesExecutor, config_dir: Path | None
) -> dict[str, Any]:
    """What switchover and teardown need to find, judge and stop the Job."""
    return {
        "kubernetes": executor.model_dump(mode="json"),
        "configDir": str(config_dir) if config_dir is not None else None,
        "log": spec.log.model_dump(mode="json"),
        "group": spec.group,
        "maxLagSeconds": spec.maxLagSeconds,
        "address": address,
        "tuplesLog": tuples_log(spec.log, address),
        "statusIndex": status_index_name(address),
    }


def _control_of(address: str, entry: Mapping[str, Any]) -> JobControl:
    executor = KubernetesExecutor.model_validate(entry["kubernetes"])
    config_dir = Path(entry["configDir"]) if entry.get("configDir") else None
    return JobControl(api_client(executor, config_dir), executor.namespace, job_name(address))


def job_running(address: str, entry: Mapping[str, Any]) -> bool:
    return _control_of(address, entry).read() is not None


def group_lag(entry: Mapping[str, Any]) -> tuple[float, int]:
    """(lag in seconds, records behind) of a registered replay Job's consumer group."""
    view = log_kafka.GroupView(log_config(dict(entry["log"])), str(entry["group"]))
    try:
        _committed, _end, lag, behind = measure(view)
        return lag, behind
    finally:
        view.close()


def undo_job(
    address: str, target: ClusterRef, log: object, executor: KubernetesExecutor, config_dir: Path | None
) -> bool:
    """Rollback: delete the Job (its pods stop replaying), the status documents and the tuples
    topic; True when there was a Job."""
    from mactl.capture import log as capture_log
    from mactl.cluster import client_for

    existed = JobControl(api_client(executor, config_dir), executor.namespace, job_name(address)).delete()
    StatusBoard(client_for(target), status_index_name(address)).delete()
    capture_log.delete_log(tuples_log(log, address))
    return existed


def forget_group(log: object, group: str, timeout: float = 30.0) -> None:
    """Delete the group's committed offsets (`log_kafka.delete_group`: Kafka refuses while
    members remain, e.g. a pod killed outright until its session times out, so it retries)."""
    log_kafka.delete_group(log_config(log), group, timeout=timeout)


def drain_and_delete(address: str, entry: Mapping[str, Any], timeout: float = 120.0) -> bool:
    """Switchover: wait until the group has committed the whole (now final) log, then delete
    the Job. False when there was no Job."""
    control = _control_of(address, entry)
    if control.read() is None:
        return False
    deadline = time.monotonic() + timeout
    while group_lag(entry)[1] > 0:
        if time.monotonic() >= deadline:
            raise ProviderError(f"replay {address}: the replay Job did not reach the end of the log in {timeout:.0f}s")
        time.sleep(0.5)
    return control.delete()


def delete_registered(address: str, entry: Mapping[str, Any]) -> bool:
    """Teardown: delete the Job (and its pods and Secret); False when there was none."""
    return _control_of(address, entry).delete()
