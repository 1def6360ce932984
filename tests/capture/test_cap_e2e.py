"""Capture → snapshot → backfill → replay → switchover → disable → teardown, for real.

A client writes through the capture proxy to ES 7.10.2 while a snapshot is taken (REST
API, with `current_position` recorded at its start as the snapshot stage should) and the
backfill provider (RFS, real worker processes) loads that snapshot into OpenSearch 2.x. The replay provider then replays from the position the snapshot stage recorded,
and the target must equal the source document for document. Run once with the file
log (replay inside apply) and once with Kafka (a detached follow-mode replayer).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from cap_helpers import free_port, stage_context  # type: ignore[import-not-found]
from mactl.providers import (
    backfill,
    capture,
    disable_capture,
    replay,
    switchover,
    teardown,
)
from opensearchpy import OpenSearch, helpers

from mactl.capture import fleet
from mactl.capture import log as capture_log
from mactl.errors import ProviderError
from mactl.schema.backfill import BackfillInputs
from mactl.schema.capture import CaptureFilters, CaptureInputs, FileLog, KafkaLog, ProxySpec
from mactl.schema.common import ClusterRef, IndexFilter, SnapshotRepository
from mactl.schema.disable_capture import DisableCaptureInputs
from mactl.schema.replay import ReplayInputs
from mactl.schema.switchover import SwitchoverInputs
from mactl.schema.teardown import TeardownInputs


def _docs(client: OpenSearch, index: str) -> dict[str, dict[str, Any]]:
    client.indices.refresh(index=index)
    return {h["_id"]: h["_source"] for h in helpers.scan(client, index=index, query={"query": {"match_all": {}}})}


class Writer(threading.Thread):
    """A client of the source, through the proxy: creates, overwrites and deletes documents."""

    def __init__(self, url: str, index: str, initial: int) -> None:
        super().__init__(daemon=True)
        self.client = OpenSearch(hosts=[url], timeout=30)
        self.index, self.initial = index, initial
        self.stop_event = threading.Event()
        self.ops = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        i = 0
        try:
            while not self.stop_event.is_set():
                self.client.index(index=self.index, id=f"n{i}", body={"n": i, "kind": "new", "pad": "x" * (i % 50)})
                if i % 3 == 0:
                    self.client.index(index=self.index, id=f"d{i % self.initial}", body={"n": i, "kind": "updated"})
                if i % 5 == 0:
                    self.client.delete(index=self.index, id=f"d{(i * 7) % self.initial}", ignore=[404])
                if i % 20 == 0:
                    self.client.bulk(
                        body="".join(
                            f'{{"index":{{"_index":"{self.index}","_id":"b{i}-{k}"}}}}\n{{"bulk":{k}}}\n'
                            for k in range(5)
                        )
                    )
                i += 1
                self.ops = i
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _backfill(
    target_ref: ClusterRef, repository: SnapshotRepository, uid: str, index: str, state: Path
) -> dict[str, Any]:
    """The backfill provider (RFS worker processes reading the snapshot files) loads the snapshot."""
    inputs = BackfillInputs(
        target=target_ref,
        repository=repository,
        snapshotName=f"cap-snap-{uid}",
        indices=[IndexFilter(names=[index])],
        workers=1,
        verifyCounts=False,
    )
    ctx = stage_context(
        "backfill.cap.s1.t.m0.b0",
        "backfill",
        inputs,
        state / "backfill.cap.s1.t.m0.b0",
        upstream={"snapshot.cap.s1": {"snapshotName": f"cap-snap-{uid}"}},
    )
    return backfill.BackfillProvider().apply(ctx)


@pytest.mark.parametrize("backend", ["file", "kafka"])
def test_capture_snapshot_backfill_replay_converges(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    es710: Any,
    os2: Any,
    es: OpenSearch,
    target: OpenSearch,
) -> None:
    uid = uuid.uuid4().hex[:8]
    index = f"cap-e2e-{uid}"
    source = ClusterRef(name=f"cap{uid}", endpoint=es710.url)
    target_ref = ClusterRef(name="cap-target", endpoint=os2.url)
    if backend == "kafka":
        broker = request.getfixturevalue("kafka_broker")
        log = KafkaLog(type="kafka", bootstrapServers=broker.bootstrap, topic=f"cap-{uid}", partitions=2)
    else:
        log = FileLog(path=str(tmp_path / "caplog"), fsync="always")
    repo_dir = es710.repo_folder("capture", uid)
    repository = SnapshotRepository(type="fs", name=f"cap-repo-{uid}", location=str(repo_dir))
    state = tmp_path / "work"
    messages: list[str] = []
    proxy_port = free_port()
    cap_inputs = CaptureInputs(
        source=source,
        log=log,
        proxies=[ProxySpec(listen=f"127.0.0.1:{proxy_port}")],
        filters=CaptureFilters(skipHeaders={"x-skip-token": "tok-4417-.*"}),
    )
    writer = None
    try:
        es.indices.create(index=index, body={"settings": {"number_of_shards": 2, "number_of_replicas": 0}})
        helpers.bulk(
            es,
            ({"_index": index, "_id": f"d{i}", "_source": {"n": i, "kind": "initial"}} for i in range(300)),
            refresh=True,
        )

        # 1. capture: the seed's inner workflow, each step visible
        cap_ctx = stage_context("capture.cap", "capture", cap_inputs, state / "capture.cap", messages=messages)
        cap_out = capture.CaptureProvider().apply(cap_ctx)
        assert [s["step"] for s in cap_out["steps"]] == list(capture.STEPS)
        assert any("all_capturing" in m for m in messages if m.startswith("progress"))
        proxy_url = cap_out["proxies"][0]["url"]
        assert fleet.health(proxy_url)["capturing"] is True
        # what a header filter matches (a token, often) is not on the proxy's command line,
        # where `ps` shows it to every user of the host
        cmdline = Path(f"/proc/{cap_out['proxies'][0]['pid']}/cmdline").read_bytes()
        assert b"capture-proxy" in cmdline and b"tok-4417" not in cmdline
        again = capture.CaptureProvider().apply(
            stage_context("capture.cap", "capture", cap_inputs, state / "capture.cap", prior=cap_out)
        )
        assert again["proxies"][0]["reused"] and again["proxies"][0]["pid"] == cap_out["proxies"][0]["pid"]
        # another migration (its own state and log) with the same source name and listen
        # address must not adopt this proxy: it would record into a log that one never reads
        foreign = CaptureInputs(
            source=source,
            log=FileLog(path=str(tmp_path / "another-migration-log")),
            proxies=[ProxySpec(listen=f"127.0.0.1:{proxy_port}")],
        )
        with pytest.raises(ProviderError, match="capture proxy of another migration already listens there"):
            capture.CaptureProvider().apply(
                stage_context("capture.cap", "capture", foreign, tmp_path / "other-work" / "capture.cap")
            )

        # 2. clients write through the proxy while the snapshot and the backfill run
        writer = Writer(proxy_url, index, 300)
        writer.start()
        time.sleep(1.0)
        # the snapshot is taken with the REST API; its start position is what the snapshot
        # stage records (`capture_position`, from `mactl.capture.log.current_position`)
        es.snapshot.create_repository(
            repository=f"cap-repo-{uid}", body={"type": "fs", "settings": {"location": str(repo_dir)}}
        )
        position = capture_log.current_position(cap_out["log"])
        es.snapshot.create(
            repository=f"cap-repo-{uid}",
            snapshot=f"cap-snap-{uid}",
            wait_for_completion=True,
            body={"indices": index, "include_global_state": False},
        )
        snap_out = {"snapshotName": f"cap-snap-{uid}", "capture_position": position}
        bf_out = _backfill(target_ref, repository, uid, index, state)
        time.sleep(0.5)
        writer.stop_event.set()
        writer.join(30)
        assert writer.error is None, writer.error
        assert writer.ops > 10
        assert capture_log.current_position(cap_out["log"])["records"] > writer.ops  # every write recorded

        # 3. replay from the position the snapshot stage recorded
        follow = backend == "kafka"
        rp_inputs = ReplayInputs(
            source=source,
            target=target_ref,
            log=log,
            maxSpeedupFactor=20.0,
            maxLagSeconds=2.0,
            lagWindowSeconds=1.0,
            timeoutSeconds=120,
            follow=follow,
        )
        rp_ctx = stage_context(
            "replay.cap.t",
            "replay",
            rp_inputs,
            state / "replay.cap.t",
            messages=messages,
            upstream={"backfill.cap.s1.t.m0.b0": bf_out, "snapshot.cap.s1": snap_out},
        )
        rp_out = replay.ReplayProvider().apply(rp_ctx)
        assert rp_out["inSync"] and rp_out["startPosition"] is not None
        assert not any("warning" in m for m in messages)
        source_docs = _docs(es, index)
        deadline = time.time() + 30  # follow mode: the detached replayer may still be finishing the tail
        while _docs(target, index) != source_docs and time.time() < deadline:
            time.sleep(0.5)
        target_docs = _docs(target, index)
        assert len(target_docs) == len(source_docs) > 300
        assert target_docs == source_docs  # every document, byte-equal sources
        tuples = [json.loads(line) for line in (state / "replay.cap.t" / "tuples.ndjson").read_text().splitlines()]
        assert tuples and all(t["match"] for t in tuples)

        if follow:  # the follow replayer keeps the target in sync with new writes
            client = OpenSearch(hosts=[proxy_url])
            client.index(index=index, id="late", body={"late": True})
            deadline = time.time() + 20
            while time.time() < deadline and not target.exists(index=index, id="late"):
                time.sleep(0.2)
            assert target.get(index=index, id="late")["_source"] == {"late": True}

        # 4. switchover and back, disable capture
        sw_inputs = SwitchoverInputs(source=source, target=target_ref)
        sw_ctx = stage_context("switchover.cap", "switchover", sw_inputs, state / "switchover.cap")
        sw_out = switchover.SwitchoverProvider().apply(sw_ctx)
        # a follow replayer is drained to the end of the log, then stopped, by the switchover
        assert sw_out["stoppedReplayers"] == (["replay.cap.t"] if follow else [])
        with urllib.request.urlopen(proxy_url) as resp:
            assert json.load(resp)["version"]["number"] == os2.version
        switchover.SwitchoverProvider().rollback(sw_ctx)
        with urllib.request.urlopen(proxy_url) as resp:
            assert json.load(resp)["version"]["number"] == "7.10.2"
        disable_capture.DisableCaptureProvider().apply(
            stage_context(
                "disable_capture.cap",
                "disable_capture",
                DisableCaptureInputs(source=source),
                state / "disable_capture.cap",
                upstream={"capture.cap": cap_out},
            )
        )
        assert fleet.health(proxy_url)["capturing"] is False
    finally:
        if writer is not None:
            writer.stop_event.set()
        # 5. teardown: proxies, replayers, the log, and this test's backfill working-state index
        from mactl.backfill.spec import state_index_name

        # the backfill's working-state index, plus one of this test's own (other areas' fixtures may
        # clean up `mactl-backfill-*` indices on the shared target concurrently)
        target.indices.create(index=f"cap-work-{uid}", body={"settings": {"index": {"hidden": True}}}, ignore=[400])
        td_inputs = TeardownInputs(
            source=source,
            target=target_ref,
            workingIndexPatterns=[state_index_name("backfill.cap.s1.t.m0.b0"), f"cap-work-{uid}*"],
        )
        td_out = teardown.TeardownProvider().apply(
            stage_context("teardown.cap", "teardown", td_inputs, state / "teardown.cap")
        )
        es.snapshot.delete(repository=f"cap-repo-{uid}", snapshot=f"cap-snap-{uid}", ignore=[404])
        es.snapshot.delete_repository(repository=f"cap-repo-{uid}", ignore=[404])
        shutil.rmtree(repo_dir, ignore_errors=True)
        for client in (es, target):
            client.indices.delete(index=index, ignore=[404])
    assert td_out["stoppedProxies"] == [proxy_url] and td_out["logDeleted"]
    assert f"cap-work-{uid}" in td_out["deletedIndices"]
    assert set(td_out["deletedIndices"]) <= {f"cap-work-{uid}", state_index_name("backfill.cap.s1.t.m0.b0")}
    assert not target.indices.exists(index=state_index_name("backfill.cap.s1.t.m0.b0"))
    assert not target.indices.exists(index=f"cap-work-{uid}")
    assert fleet.health(proxy_url) is None
    assert td_out["stoppedReplayers"] == []
