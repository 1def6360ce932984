"""The backfill stage end to end: ES 7.10.2 snapshot → OpenSearch 2.x, compared doc by doc.

Each test runs the stage's `apply` in a subprocess (`bf_driver.py`), with real worker
processes, against the session's 6-shard source snapshot (updates, deletes, routing).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from bf_fixtures import RUN, SourceSnapshot, name, scan_docs, stage_address
from bf_proxy import TcpProxy
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from mactl.backfill.deadletter import Location, list_files, read_entries
from mactl.backfill.prepare import lease_store
from mactl.backfill.sampling import Sampler, id_hash, percent_threshold
from mactl.backfill.source import snapshot_uuid
from mactl.backfill.spec import build_spec
from mactl.schema.backfill import BackfillInputs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DRIVER = Path(__file__).with_name("bf_driver.py")
OUTAGE_S = float(os.environ.get("MACTL_TEST_BF_OUTAGE_S", "30"))


def _inputs(src: SourceSnapshot, target_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "target": {"name": "target", "endpoint": target_url},
        "repository": {"type": "fs", "location": str(src.repo_dir)},
        "snapshotName": src.snapshot,
        "indices": [{"names": [src.index]}],
        "leaseSeconds": 3,
        **extra,
    }


def _start(tmp: Path, inputs: dict[str, Any], address: str, op: str = "apply") -> subprocess.Popen[str]:
    path = tmp / f"inputs-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(inputs))
    env = dict(os.environ, MACTL_BACKFILL_CHECKPOINT_S="0.3")
    return subprocess.Popen(
        [sys.executable, str(DRIVER), op, str(path), str(tmp / "work"), address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _run(tmp: Path, inputs: dict[str, Any], address: str, op: str = "apply", timeout: float = 150) -> dict[str, Any]:
    proc = _start(tmp, inputs, address, op)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"stage {op} failed:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def _address() -> str:
    return stage_address()


def _source_docs(src: SourceSnapshot) -> dict[str, tuple[str | None, dict[str, Any]]]:
    return scan_docs(OpenSearch(src.es_url, timeout=60), src.index)


def _claims(inputs: dict[str, Any], address: str, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    model = BackfillInputs.model_validate(inputs)
    spec = build_spec(address, model, workdir=tmp, snapshot_uuid=snapshot_uuid(model.repository, model.snapshotName))
    return {r.unit.key: r.body["claims"] for r in lease_store(spec).units()}


def _config(tmp: Path, src: SourceSnapshot, target_url: str, backfill: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Write a mactl.yaml for this test's backfill and return its stage address and inputs."""
    import yaml

    from mactl.config import load_config
    from mactl.graph.expand import expand

    config = {
        "allowOutsidePaths": True,  # the dead-letter folder is an absolute path under tmp
        "targets": [{"name": "t1", "endpoint": target_url}],
        "source-migration-configurations": [
            {
                "source": {
                    "name": "es",
                    "endpoint": src.es_url,
                    "snapshotRepository": {"type": "fs", "location": str(src.repo_dir), "name": src.repo_name},
                },
                "snapshot-and-migration-configs": [
                    {
                        "name": "s1",
                        "existingSnapshot": {"name": src.snapshot},
                        "migrations": [
                            {
                                "name": f"m{RUN}{uuid.uuid4().hex[:4]}",
                                "documentBackfillConfigs": [{"name": "b0", **backfill}],
                            }
                        ],
                    }
                ],
                "validation": {"enabled": False},
            }
        ],
    }
    (tmp / "mactl.yaml").write_text(yaml.safe_dump(config))
    graph = expand(load_config(tmp / "mactl.yaml").config)
    (address,) = [a for a in graph.stages if a.startswith("backfill.")]
    return address, json.loads(json.dumps(graph.stages[address].inputs))


def _mactl(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mactl", *args], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_apply_workers_and_a_joining_mactl_worker_copy_every_live_document_each_shard_once(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    address, inputs = _config(
        tmp_path,
        source_snapshot,
        source_snapshot.os_url,
        {
            "indices": {"names": source_snapshot.index},
            "workers": 2,
            "maxBatchDocs": 100,
            "maxThroughputMbps": 1.68,  # 0.1 MiB/s for each of the 2 workers
            "leaseSeconds": 3,
        },
    )
    joiner = _mactl(tmp_path, "worker", address, "--json")  # a third worker, "from another host"
    time.sleep(1.0)
    outputs = _run(tmp_path, inputs, address)
    joined_out, joined_err = joiner.communicate(timeout=60)
    assert joiner.returncode == 0, joined_err[-2000:]
    joined = json.loads(joined_out.strip().splitlines()[-1])
    expected = _source_docs(source_snapshot)
    assert scan_docs(target, source_snapshot.index) == expected  # ids, routing and _source, doc by doc
    stats = outputs["indices"][source_snapshot.index]
    assert stats["shards"] == 6 and stats["live"] == stats["read"] == stats["written"] == len(expected)
    assert outputs["targetIndices"][source_snapshot.index] == {"expected": len(expected), "actual": len(expected)}
    assert outputs["differences"] == [] and outputs["rollbackMethod"] in ("delete_by_query", "delete_by_ids")
    claims = _claims(inputs, address, tmp_path)
    assert len(claims) == 6 and all(len(c) == 1 for c in claims.values()), claims  # each unit done exactly once
    holders = {c[0]["holder"] for c in claims.values()}
    # The joiner and the stage's own workers shared the units. How many each got is timing: on a
    # loaded machine the joiner (started first) may finish several before a local worker starts.
    assert len(holders) >= 2 and joined["holder"] in holders, (holders, joined)
    assert sorted(joined["units_done"]) == sorted(k for k, c in claims.items() if c[0]["holder"] == joined["holder"])
    # rollback empties the index (by query, or by ids when the target lacks the reindex module)
    _run(tmp_path, inputs, address, op="rollback", timeout=60)
    target.indices.refresh(index=source_snapshot.index)
    assert target.count(index=source_snapshot.index)["count"] == 0
    assert not target.indices.exists(
        index=build_spec(address, BackfillInputs.model_validate(inputs), workdir=tmp_path).state_index
    )


def _wait_for_more_docs(
    target: OpenSearch, index: str, than: int, proc: subprocess.Popen[str], timeout: float = 60
) -> int:
    """Block until the target holds more than `than` documents of `index` (the run is writing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the stage ended before it could be killed"
        try:
            target.indices.refresh(index=index)
            count = int(target.count(index=index)["count"])
        except TransportError:  # not created yet, or its shards are still starting
            count = 0
        if count > than:
            return count
        time.sleep(0.2)
    raise AssertionError(f"no new documents in {index} within {timeout}s")


def _wait_for_a_checkpoint(
    inputs: dict[str, Any], address: str, tmp: Path, proc: subprocess.Popen[str], timeout: float = 60
) -> None:
    """Block until some unit that is not done holds a checkpointed cursor in the lease index."""
    model = BackfillInputs.model_validate(inputs)
    spec = build_spec(address, model, workdir=tmp, snapshot_uuid=snapshot_uuid(model.repository, model.snapshotName))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the stage ended before any unit checkpointed"
        try:
            if any(u.cursor is not None and u.status != "done" for u in lease_store(spec).units()):
                return
        except TransportError:  # the lease index is not there yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"no unit checkpointed within {timeout}s")


def test_kill_9_five_times_then_rerun_is_exact(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    address = _address()
    inputs = _inputs(source_snapshot, source_snapshot.os_url, workers=2, maxBatchDocs=50, maxThroughputMbps=0.84)
    rnd = random.Random()
    seen = 0
    for attempt in range(5):
        proc = _start(tmp_path, inputs, address)
        seen = _wait_for_more_docs(target, source_snapshot.index, seen, proc)
        if attempt == 0:
            # Once, kill only after an unfinished unit has checkpointed, so a later run must
            # resume it from its cursor; the other kills land at random moments.
            _wait_for_a_checkpoint(inputs, address, tmp_path, proc)
        time.sleep(rnd.uniform(0.0, 1.5))  # then a random moment while it writes
        os.killpg(proc.pid, signal.SIGKILL)  # the apply and its worker processes, mid-write
        proc.communicate()
    partial = scan_docs(target, source_snapshot.index)
    outputs = _run(tmp_path, inputs, address)
    expected = _source_docs(source_snapshot)
    assert 0 < len(partial) and scan_docs(target, source_snapshot.index) == expected
    assert outputs["indices"][source_snapshot.index]["written"] == len(expected)
    claims = _claims(inputs, address, tmp_path)
    assert any(c.get("from_cursor") for cl in claims.values() for c in cl), "no unit ever resumed from a checkpoint"


def test_sampling_1_then_10_percent_only_adds_documents(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    address = _address()
    live = _source_docs(source_snapshot)
    one = _run(tmp_path, _inputs(source_snapshot, source_snapshot.os_url, workers=2, sample={"percent": 1}), address)
    got_one = scan_docs(target, source_snapshot.index)
    ten = _run(tmp_path, _inputs(source_snapshot, source_snapshot.os_url, workers=2, sample={"percent": 10}), address)
    got_ten = scan_docs(target, source_snapshot.index)
    for pct, got in ((1, got_one), (10, got_ten)):
        sampler = Sampler(percent_threshold(pct))
        assert got == {i: d for i, d in live.items() if sampler.keep(i)}
    assert set(got_one) < set(got_ten) and len(got_one) > 0
    stats = ten["indices"][source_snapshot.index]
    assert stats["written"] + stats["skippedBySampling"] == stats["live"] == len(live)
    assert one["indices"][source_snapshot.index]["written"] == len(got_one)


RENAMED = name("renamed")
RENAME_AND_DROP = (
    "{% if _source.nested.b % 5 == 0 %}{{ DROP }}{% else %}{% set s = dict(_source) %}"
    '{% do s.update({"headline": s.pop("title")}) %}{"_index": "'
    + RENAMED
    + '", "_source": {{ s | tojson }}}{% endif %}'
)


def test_transform_renames_a_field_and_drops_documents(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    inputs = _inputs(
        source_snapshot,
        source_snapshot.os_url,
        workers=2,
        transforms=[{"kind": "jinja", "template": RENAME_AND_DROP}],
        rollbackMode="recreate",
    )
    address = _address()
    outputs = _run(tmp_path, inputs, address)
    expected = {}
    for doc_id, (routing, source) in _source_docs(source_snapshot).items():
        if source["nested"]["b"] % 5:
            s = dict(source)
            s["headline"] = s.pop("title")
            expected[doc_id] = (routing, s)
    assert scan_docs(target, RENAMED) == expected
    stats = outputs["indices"][source_snapshot.index]
    assert (
        stats["dropped"] > 0
        and stats["written"] == len(expected)
        and stats["dropped"] + stats["written"] == stats["live"]
    )
    assert outputs["targetIndices"] == {RENAMED: {"expected": len(expected), "actual": len(expected)}}
    # rollback by drop-and-recreate: the index the transform wrote to is back, empty, same mapping
    mapping = target.indices.get_mapping(index=RENAMED)[RENAMED]
    _run(tmp_path, inputs, address, op="rollback", timeout=60)
    assert target.count(index=RENAMED)["count"] == 0
    assert target.indices.get_mapping(index=RENAMED)[RENAMED] == mapping


FIX_EXTRA = '{% set s = dict(_source) %}{% if "extra" in s %}{% do s.update({"extra_n": s.pop("extra")}) %}{% endif %}{"_source": {{ s | tojson }}}'


def _state(tmp: Path) -> dict[str, Any]:
    from mactl.state import LocalStateConfig, open_backend

    doc = open_backend(LocalStateConfig(), base_dir=tmp).read()
    assert doc is not None
    return doc.model_dump(mode="json")


def _record_in_state(tmp: Path, address: str, outputs: dict[str, Any]) -> None:
    """What apply would have recorded for the stage (the engine is not under test here)."""
    from mactl.state import LocalStateConfig, StageRecord, StateDocument, open_backend

    backend = open_backend(LocalStateConfig(), base_dir=tmp)
    doc = backend.read() or StateDocument()
    doc.stages[address] = StageRecord(type="backfill", outputs=outputs, status="complete")
    backend.write(doc)


def test_mapping_conflict_fills_the_dead_letter_queue_and_resend_failed_with_a_fixing_transform(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    index = source_snapshot.index
    target.indices.create(
        index=index,
        body={"settings": {"number_of_shards": 2}, "mappings": {"properties": {"extra": {"type": "boolean"}}}},
    )
    dlq = tmp_path / "dlq"
    address, inputs = _config(
        tmp_path,
        source_snapshot,
        source_snapshot.os_url,
        {"indices": {"names": index}, "workers": 2, "deadLetter": {"location": str(dlq)}},
    )
    outputs = _run(tmp_path, inputs, address)
    live = _source_docs(source_snapshot)
    bad = {i for i, (_, s) in live.items() if "extra" in s}
    stats = outputs["indices"][index]
    assert stats["failed"] == len(bad) > 0 and stats["written"] == len(live) - len(bad)
    assert outputs["deadLetter"] == {"location": str(dlq), "documents": len(bad)}
    location = Location(str(dlq), address)
    entries = list(read_entries(location, list_files(location)))
    assert {e["id"] for e in entries} == bad
    assert all(e["reason"]["type"] == "mapper_parsing_exception" and e["status"] == 400 for e in entries)
    assert all(e["source"] == live[e["id"]][1] and e["routing"] == live[e["id"]][0] for e in entries)
    assert set(scan_docs(target, index)) == set(live) - bad  # the shards went on past the rejections
    # resend as-is: the mapping is still wrong, so everything stays dead-lettered
    _record_in_state(tmp_path, address, outputs)
    same = _mactl(tmp_path, "backfill", "resend-failed", address, "--json")
    out, err = same.communicate(timeout=60)
    assert same.returncode == 0, err[-2000:]
    assert json.loads(out)["failed"] == len(bad)
    books = _state(tmp_path)
    assert books["stages"][address]["outputs"]["indices"][index]["failed"] == len(bad)
    assert books["history"][-1]["operation"] == "backfill resend-failed"
    assert books["history"][-1]["result"] == "failed"
    # resend through a fixed transform (run on the original snapshot documents)
    (tmp_path / "fix.j2").write_text(FIX_EXTRA)
    fixed = _mactl(tmp_path, "backfill", "resend-failed", address, "--transform", "fix.j2", "--json")
    out, err = fixed.communicate(timeout=60)
    assert fixed.returncode == 0, err[-2000:]
    result = json.loads(out)
    assert (result["entries"], result["written"], result["failed"]) == (len(bad), len(bad), 0)
    expected = {}
    for doc_id, (routing, source) in live.items():
        s = dict(source)
        if "extra" in s:
            s["extra_n"] = s.pop("extra")
        expected[doc_id] = (routing, s)
    assert scan_docs(target, index) == expected
    assert list_files(location) == []  # nothing left to resend
    # ... and the stage's books say so: every document written, none failed, the target counted
    books = _state(tmp_path)
    record = books["stages"][address]
    assert record["status"] == "complete"
    after = record["outputs"]
    assert after["indices"][index]["written"] == len(live) and after["indices"][index]["failed"] == 0
    assert after["deadLetter"] == {"location": str(dlq), "documents": 0}
    assert after["targetIndices"][index] == {"expected": len(live), "actual": len(live)}
    assert after["differences"] == []
    assert after["resends"][-1] == {"documents": len(bad), "written": len(bad), "failed": 0, "dropped": 0}
    last = books["history"][-1]
    assert (last["operation"], last["address"], last["result"]) == ("backfill resend-failed", address, "ok")
    assert f"{len(bad)} written, 0 still failing" in last["detail"]


def test_target_cut_for_a_while_mid_run_then_the_stage_still_completes_exactly(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path, os2: Any
) -> None:
    host, port = os2.url.rsplit("//", 1)[1].split(":")
    proxy = TcpProxy(host, int(port))
    proc: subprocess.Popen[str] | None = None
    try:
        inputs = _inputs(
            source_snapshot, proxy.url, workers=2, maxBatchDocs=50, maxThroughputMbps=1.68, leaseSeconds=10
        )
        proc = _start(tmp_path, inputs, _address())
        _wait_for_more_docs(target, source_snapshot.index, 0, proc)
        proxy.cut()
        time.sleep(OUTAGE_S)
        during = proxy.refused
        proxy.restore()
        restored = time.monotonic()
        out, err = proc.communicate(timeout=300)
        print(
            f"target cut for {OUTAGE_S:.0f}s ({during} connections refused); the stage finished {time.monotonic() - restored:.1f}s after it came back"
        )
        logs = "\n".join(p.read_text() for p in sorted((tmp_path / "work" / "workers").glob("*.log")))
        assert proc.returncode == 0, err[-3000:] + logs[-3000:]
        outputs = json.loads(out.strip().splitlines()[-1])
        assert during > 0  # the workers did try, and were refused, while it was down
        live = _source_docs(source_snapshot)
        assert scan_docs(target, source_snapshot.index) == live
        assert outputs["differences"] == []
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        proxy.close()


def test_max_docs_per_index_takes_the_n_smallest_id_hashes(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    outputs = _run(
        tmp_path,
        _inputs(source_snapshot, source_snapshot.os_url, workers=2, sample={"maxDocsPerIndex": 100}),
        _address(),
    )
    live = _source_docs(source_snapshot)
    smallest = set(sorted(live, key=id_hash)[:100])
    got = scan_docs(target, source_snapshot.index)
    assert got == {i: live[i] for i in smallest}
    assert outputs["indices"][source_snapshot.index]["skippedBySampling"] == len(live) - 100


def test_a_snapshot_taken_again_under_the_same_name_is_copied_again(
    tmp_path: Path, es710: Any, os2: Any, target: OpenSearch
) -> None:
    """The first snapshot's units are all finished on the target's working-state index; a
    new snapshot under the same name (other documents) must not inherit them."""
    es = OpenSearch(es710.url, timeout=60)
    index = name(f"retake-{uuid.uuid4().hex[:4]}")
    repo_name, repo_dir = f"bf-retake-{RUN}", Path(es710.repo_dir) / "backfill" / f"retake-{uuid.uuid4().hex[:6]}"
    repo_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(repo_dir, 0o777)
    es.snapshot.create_repository(repository=repo_name, body={"type": "fs", "settings": {"location": str(repo_dir)}})
    inputs = {
        "target": {"name": "target", "endpoint": os2.url},
        "repository": {"type": "fs", "location": str(repo_dir)},
        "snapshotName": "same-name",
        "indices": [{"names": [index]}],
        "leaseSeconds": 3,
    }
    address = _address()
    try:
        for generation, count in ((1, 5), (2, 9)):
            es.indices.delete(index=index, ignore=[404])
            es.snapshot.delete(repository=repo_name, snapshot="same-name", ignore=[404])
            for i in range(count):
                es.index(index=index, id=f"d{i}", body={"take": generation, "i": i})
            es.indices.refresh(index=index)
            es.snapshot.create(
                repository=repo_name, snapshot="same-name", body={"indices": index}, wait_for_completion=True
            )
            target.indices.delete(index=index, ignore=[404])  # as a rollback of the metadata stage leaves it
            (work := tmp_path / f"take-{generation}").mkdir()
            _run(work, inputs, address)
            docs = scan_docs(target, index)
            assert {k: v[1] for k, v in docs.items()} == {f"d{i}": {"take": generation, "i": i} for i in range(count)}
    finally:
        es.indices.delete(index=index, ignore=[404])
        es.snapshot.delete(repository=repo_name, snapshot="same-name", ignore=[404])
        es.snapshot.delete_repository(repository=repo_name, ignore=[404])
