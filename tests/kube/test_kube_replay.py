"""The replay stage's replayers as a Kubernetes Job, against a real kube-apiserver, Kafka and
clusters.

Clients write to the ES 7.10.2 source through a real capture proxy recording into a Kafka
topic of 4 partitions; the replay stage runs with `executor: kubernetes`, so the node of the
local control plane (`devtools.kube.node`) really runs each pod's `mactl replay run
--from-env`, the pods sharing the stage's consumer group. What lands on the OpenSearch 2.x
target is compared with the source document by document.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kube_helpers import IMAGE, Kube, assert_the_password_is_only_in_the_secret, wait_for_the_image_build
from mactl.providers.replay import ReplayProvider, group_name
from opensearchpy import OpenSearch, helpers

from mactl.audit.checks import check_replay
from mactl.capture import log_kafka
from mactl.capture.log import log_config
from mactl.executors.kubernetes import JobControl, job_name
from mactl.executors.kubernetes_replay import ReplayJobRun, status_index_name, tuples_log
from mactl.schema.replay import ReplayInputs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "capture"))
from cap_helpers import stage_context, start_proxy  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.kube, pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4


def _docs(client: OpenSearch, index: str) -> dict[str, dict[str, Any]]:
    client.indices.refresh(index=index)
    return {h["_id"]: h["_source"] for h in helpers.scan(client, index=index, query={"query": {"match_all": {}}})}


def _write(url: str, index: str, writers: int, ops: int) -> None:
    """`writers` clients, each on its own connection (so its records go to one partition):
    creates, overwrites and deletes by id."""

    def client_ops(w: int) -> None:
        client = OpenSearch(hosts=[url], timeout=30)
        for i in range(ops):
            client.index(index=index, id=f"w{w}-{i}", body={"w": w, "i": i, "text": f"doc {w}/{i}"})
            if i % 5 == 4:
                client.index(index=index, id=f"w{w}-{i - 2}", body={"w": w, "i": i - 2, "rewritten": True})
            if i % 7 == 6:
                client.delete(index=index, id=f"w{w}-{i - 1}")

    threads = [threading.Thread(target=client_ops, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


class Scene:
    """A source index written through a capture proxy into a fresh Kafka topic."""

    def __init__(self, es710: Any, os2: Any, kafka: Any, kube: Kube, tmp: Path) -> None:
        uid = uuid.uuid4().hex[:8]
        self.uid = uid
        self.index = f"kreplay-{uid}"
        self.address = f"replay.kr{uid}.target"
        self.log = {"type": "kafka", "bootstrapServers": kafka.bootstrap, "topic": self.index, "partitions": PARTITIONS}
        self.source = OpenSearch(es710.url, timeout=60)
        self.target = OpenSearch(os2.url, timeout=60)
        self.source_url, self.target_url = es710.url, os2.url
        self.kube = kube
        self.tmp = tmp
        body = {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
        self.source.indices.create(index=self.index, body=body)
        self.target.indices.create(index=self.index, body=body)
        self.proxy = start_proxy(es710.url, self.log, proxy_id=f"kr-{uid}", capturing=True)

    def inputs(self, replicas: int, image: str = "mactl:test", **extra: Any) -> ReplayInputs:
        return ReplayInputs.model_validate(
            {
                "source": {"name": f"kr{self.uid}", "endpoint": self.source_url},
                "target": {"name": "target", "endpoint": self.target_url},
                "log": self.log,
                "maxSpeedupFactor": 50.0,
                "maxLagSeconds": 2.0,
                "lagWindowSeconds": 2.0,
                "timeoutSeconds": 50,
                "executor": {
                    "type": "kubernetes",
                    "image": image,
                    "replicas": replicas,
                    "kubeconfig": str(self.kube.kubeconfig),
                },
                **extra,
            }
        )

    def context(self, inputs: ReplayInputs, messages: list[str], prior: dict[str, Any] | None = None) -> Any:
        return stage_context(
            self.address, "replay", inputs, self.tmp / "work" / self.address, prior=prior, messages=messages
        )

    def control(self) -> JobControl:
        return JobControl(self.kube.api(), "default", job_name(self.address))

    def group_offsets(self) -> dict[str, int]:
        view = log_kafka.GroupView(log_config(self.log), group_name(self.address))
        try:
            return view.committed()
        finally:
            view.close()

    def end_offsets(self) -> dict[str, int]:
        return log_kafka.end_offsets(log_config(self.log))

    def close(self) -> None:
        self.proxy.stop()
        for client in (self.source, self.target):
            client.indices.delete(index=self.index, ignore=[404])
        self.target.indices.delete(index=status_index_name(self.address), ignore=[404])
        log_kafka.delete_log(log_config(self.log))
        log_kafka.delete_log(tuples_log(self.log, self.address))


@pytest.fixture
def scene(es710: Any, os2: Any, kafka_broker: Any, kube: Kube, tmp_path: Path) -> Any:
    made = Scene(es710, os2, kafka_broker, kube, tmp_path)
    yield made
    made.control().delete()
    made.close()


def test_two_pods_share_the_partitions_and_replay_the_traffic_exactly(scene: Scene) -> None:
    _write(scene.proxy.url, scene.index, writers=8, ops=40)
    records = sum(scene.end_offsets().values())
    assert records > 8 * 40  # every write recorded, in Kafka
    messages: list[str] = []
    outputs = ReplayProvider().apply(scene.context(scene.inputs(replicas=2), messages))
    assert outputs["inSync"] and outputs["job"]["replicas"] == 2
    # The target holds exactly the source's documents (ids and sources).
    source_docs = _docs(scene.source, scene.index)
    assert len(source_docs) > 8 * 30
    assert _docs(scene.target, scene.index) == source_docs
    # Judged from outside the pods: the group committed the whole topic, and the counts the
    # pods reported add up to every record, with no status mismatch.
    status = outputs["status"]
    assert scene.group_offsets() == scene.end_offsets() == status["committed"]
    assert status["replayed"] >= records and status["mismatches"] == 0 and status["caughtUp"]
    # The pods' request tuples reached the Kafka topic validate reads: one per replayed request.
    replay_check = check_replay(scene.address, outputs, 1.0, None)
    assert replay_check["passed"] and replay_check["requests"] == status["replayed"], replay_check
    # Kafka shared the partitions between the two pods of the Job.
    pods = status["pods"]
    assert len(pods) == 2 and all(name.startswith(job_name(scene.address) + "-") for name in pods), pods
    held = [set(p["partitions"]) for p in pods.values()]
    assert all(held) and set.union(*held) == {str(p) for p in range(PARTITIONS)} and not set.intersection(*held)
    # follow: false: the Job, its pods and the status documents are gone.
    control = scene.control()
    assert control.read() is None and control.pods() == []
    assert not scene.target.indices.exists(index=status_index_name(scene.address))


def test_a_follow_job_keeps_replaying_until_rollback_deletes_it_and_forgets_the_offsets(scene: Scene) -> None:
    _write(scene.proxy.url, scene.index, writers=2, ops=20)
    inputs = scene.inputs(replicas=1, follow=True)
    messages: list[str] = []
    outputs = ReplayProvider().apply(scene.context(inputs, messages))
    assert outputs["inSync"] and outputs["statusIndex"] == status_index_name(scene.address)
    control = scene.control()
    assert control.read() is not None
    # The Job keeps replaying what is captured after apply returned.
    OpenSearch(hosts=[scene.proxy.url]).index(index=scene.index, id="late", body={"late": True})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not scene.target.exists(index=scene.index, id="late"):
        time.sleep(0.3)
    assert scene.target.get(index=scene.index, id="late")["_source"] == {"late": True}
    assert _docs(scene.target, scene.index) == _docs(scene.source, scene.index)
    assert scene.group_offsets()
    ReplayProvider().rollback(scene.context(inputs, messages, prior=outputs))
    assert control.read() is None and control.pods() == []
    assert scene.group_offsets() == {}  # a redo starts from the snapshot's position again
    assert log_kafka.end_offsets(outputs["tuplesLog"]) == {}  # the tuples topic is gone too
    assert not scene.target.indices.exists(index=status_index_name(scene.address))


def test_the_replay_job_spec_carries_no_secret_values_and_scales_in_place(scene: Scene) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    inputs = scene.inputs(replicas=2)
    inputs = inputs.model_copy(
        update={"target": inputs.target.model_validate({**inputs.target.model_dump(), "auth": {
            "type": "basic", "username": "admin", "password": password}})}
    )  # fmt: skip
    assert inputs.executor is not None and inputs.executor.type == "kubernetes"
    # A node selector no node has: the pods stay Pending, so this looks at the objects only.
    executor = inputs.executor.model_copy(update={"nodeSelector": {"mactl.io/no-such-node": "true"}})
    from mactl.providers.replay import _spec

    spec = _spec(scene.context(inputs, []), {}, resume=False)
    run = ReplayJobRun(scene.address, spec, executor)
    run.start({}, resume=False)
    control = run.control
    first = control.read()
    assert_the_password_is_only_in_the_secret(control, first, password, pods=2)
    # `replicas` 2 → 3 (an update in place in the plan): the same Job, scaled.
    scaled = ReplayJobRun(scene.address, spec, executor.model_copy(update={"replicas": 3}))
    scaled.start({}, resume=True)
    after = control.read()
    assert after.metadata.uid == first.metadata.uid
    assert (after.spec.parallelism, after.spec.completions) == (3, 3)


def test_a_pod_killed_mid_replay_is_replaced_and_its_partitions_resume_from_the_committed_offsets(
    scene: Scene,
) -> None:
    _write(scene.proxy.url, scene.index, writers=8, ops=40)
    # Replayed at a quarter of the captured pace: long enough to kill a pod in the middle.
    inputs = scene.inputs(replicas=2, maxSpeedupFactor=0.25, timeoutSeconds=55)
    result: dict[str, Any] = {}

    def apply() -> None:
        try:
            result["outputs"] = ReplayProvider().apply(scene.context(inputs, []))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            result["error"] = exc

    thread = threading.Thread(target=apply)
    thread.start()
    control = scene.control()
    victim = None
    deadline = time.monotonic() + 40
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.5)
        if scene.target.indices.exists(index=status_index_name(scene.address)):
            scene.target.indices.refresh(index=status_index_name(scene.address))
            docs = scene.target.search(index=status_index_name(scene.address), body={"size": 10})["hits"]["hits"]
            victim = next((d["_id"] for d in docs if d["_source"].get("committed") and d["_source"]["replayed"]), None)
    assert victim is not None, "no pod reported a commit"
    # What `kubectl delete pod --grace-period=0 --force` does: the node kills the replayer at once.
    from kubernetes import client

    client.CoreV1Api(scene.kube.api()).delete_namespaced_pod(
        victim, "default", body=client.V1DeleteOptions(grace_period_seconds=0)
    )
    thread.join(90)
    assert "error" not in result, result.get("error")
    status = result["outputs"]["status"]
    assert _docs(scene.target, scene.index) == _docs(scene.source, scene.index)
    assert scene.group_offsets() == scene.end_offsets() == status["committed"]
    # The Job replaced the killed pod: a third pod reported, and the killed one held partitions.
    assert victim in status["pods"] and len(status["pods"]) >= 3, status["pods"]
    assert control.read() is None


def test_switchover_drains_a_follow_job_to_the_end_of_the_log_then_deletes_it(scene: Scene) -> None:
    from mactl.providers.switchover import SwitchoverProvider

    from mactl.schema.switchover import SwitchoverInputs

    _write(scene.proxy.url, scene.index, writers=2, ops=20)
    inputs = scene.inputs(replicas=2, follow=True)
    ReplayProvider().apply(scene.context(inputs, []))
    control = scene.control()
    assert control.read() is not None
    # Written after the replay reported in sync, just before the swing: the drain must take it.
    _write(scene.proxy.url, scene.index, writers=4, ops=15)
    expected = _docs(scene.source, scene.index)
    switchover = SwitchoverInputs(source=inputs.source, target=inputs.target, proxies=[scene.proxy.url])
    outputs = SwitchoverProvider().apply(
        stage_context("switchover.kr", "switchover", switchover, scene.tmp / "work" / "switchover.kr")
    )
    assert outputs["stoppedReplayers"] == [scene.address]
    assert control.read() is None and control.pods() == []
    assert scene.group_offsets() == scene.end_offsets()  # drained: every captured request committed
    assert _docs(scene.target, scene.index) == expected


def test_teardown_deletes_a_follow_job_its_status_index_and_its_tuples(scene: Scene) -> None:
    from mactl.providers.teardown import TeardownProvider

    from mactl.schema.teardown import TeardownInputs

    _write(scene.proxy.url, scene.index, writers=2, ops=10)
    inputs = scene.inputs(replicas=1, follow=True)
    ReplayProvider().apply(scene.context(inputs, []))
    control = scene.control()
    assert control.read() is not None and scene.target.indices.exists(index=status_index_name(scene.address))
    teardown = TeardownInputs(source=inputs.source, target=inputs.target, proxies=[scene.proxy.url])
    outputs = TeardownProvider().apply(
        stage_context("teardown.kr", "teardown", teardown, scene.tmp / "work" / "teardown.kr")
    )
    assert outputs["stoppedReplayers"] == [scene.address]
    assert status_index_name(scene.address) in outputs["deletedIndices"]
    assert control.read() is None and control.pods() == []
    assert not scene.target.indices.exists(index=status_index_name(scene.address))
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    tuples = tuples_log(inputs.log, scene.address)
    topics = AdminClient({"bootstrap.servers": tuples["bootstrapServers"]}).list_topics(timeout=10).topics
    assert tuples["topic"] not in topics  # deleteLog: the pods' tuples go with the capture log


def test_replay_pods_run_in_the_image_built_from_the_containerfile(scene: Scene) -> None:
    """The replayers run from the image (`scripts/image build`), whose `mactl[kubernetes,kafka]`
    reads the Kafka log, and replay the traffic exactly."""
    wait_for_the_image_build()
    _write(scene.proxy.url, scene.index, writers=4, ops=20)
    outputs = ReplayProvider().apply(scene.context(scene.inputs(replicas=2, image=IMAGE), []))
    assert outputs["inSync"] and scene.group_offsets() == scene.end_offsets()
    assert _docs(scene.target, scene.index) == _docs(scene.source, scene.index)
    pods = outputs["status"]["pods"]
    assert len(pods) == 2, pods
    for pod in pods:
        log = (scene.kube.pods / f"default_{pod}" / "log").read_text()
        assert f"running in image {IMAGE}" in log and "exec /opt/mactl/bin/mactl as uid 10001 " in log, log[-2000:]
