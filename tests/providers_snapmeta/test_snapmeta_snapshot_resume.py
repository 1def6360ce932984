"""The snapshot stage after a kill: it adopts the snapshot it started (by the marker it
recorded before the create request), whatever state the snapshot reached meanwhile, and a
rollback removes it even though the stage never recorded completion (issue 15 item 1)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from mactl.providers.base import StageContext
from mactl.providers.snapshot import SnapshotProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names

from mactl.errors import ProviderError
from mactl.schema.snapshot import SnapshotInputs

pytestmark = pytest.mark.cluster

ADDRESS = "snapshot.es710.s1"


class Killed(Exception):
    """Stands for kill -9: the provider stops dead at the checkpoint after the request."""


def _inputs(n: Names, cluster: Any, **extra: Any) -> SnapshotInputs:
    return SnapshotInputs.model_validate(
        {
            "source": {"name": cluster.name, "endpoint": cluster.url},
            "repository": {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)},
            "snapshotName": n("snap"),
            **extra,
        }
    )


def _ctx(
    inputs: SnapshotInputs,
    *,
    checkpoints: list[dict[str, Any]],
    checkpoint_data: dict[str, Any] | None = None,
    prior: dict[str, Any] | None = None,
    kill_at: int | None = None,
) -> StageContext[SnapshotInputs]:
    def checkpoint(data: dict[str, Any]) -> None:
        checkpoints.append(dict(data))
        if kill_at is not None and len(checkpoints) == kill_at:
            raise Killed

    return StageContext(
        address=ADDRESS,
        type="snapshot",
        inputs=inputs,
        prior_outputs=prior,
        upstream={},
        checkpoint_data=checkpoint_data,
        workdir=Path("/tmp"),
        checkpoint=checkpoint,
    )


def _seed(es: OpenSearch, n: Names) -> None:
    for name in ("a", "b"):
        es.indices.create(index=n(name), body={"settings": {"number_of_shards": 2, "number_of_replicas": 0}})
        es.bulk(body=[x for i in range(50) for x in ({"index": {"_index": n(name), "_id": str(i)}}, {"i": i})])
    es.indices.refresh(index=n("*"))


def _wait_done(es: OpenSearch, n: Names, name: str) -> dict[str, Any]:
    for _ in range(300):
        snap = es.snapshot.get(repository=n("repo"), snapshot=name)["snapshots"][0]
        if snap["state"] not in ("IN_PROGRESS", "STARTED", "INIT"):
            return dict(snap)
        time.sleep(0.2)
    raise AssertionError("snapshot never finished")


def _snapshots(es: OpenSearch, n: Names) -> list[str]:
    return [s["snapshot"] for s in es.snapshot.get(repository=n("repo"), snapshot="_all")["snapshots"]]


def test_killed_after_request_rerun_adopts_the_finished_snapshot(es: OpenSearch, names: Names, es710: Any) -> None:
    n = names
    _seed(es, n)
    provider = SnapshotProvider()
    inputs = _inputs(n, es710, indices=[{"names": [f"{n.prefix}*"]}])
    recorded: list[dict[str, Any]] = []
    # Killed right after the create request was sent (the checkpoint that follows it).
    with pytest.raises(Killed):
        provider.apply(_ctx(inputs, checkpoints=recorded, kill_at=2))
    before_request = recorded[0]
    assert before_request["requested"]["name"] == n("snap") and before_request["requested"]["run"]
    # While mactl was dead, the cluster finished the snapshot: it carries the marker.
    done = _wait_done(es, n, n("snap"))
    assert done["state"] == "SUCCESS"
    assert done["metadata"]["mactl"] == {"stage": ADDRESS, "run": before_request["requested"]["run"]}

    # The rerun adopts it (no "mactl did not create it"), with the capture position
    # recorded before the request.
    out = provider.apply(_ctx(inputs, checkpoints=[], checkpoint_data=recorded[-1]))
    assert out["uuid"] == done["uuid"] and out["state"] == "SUCCESS" and out["createdByMactl"] is True
    assert out["indices"] == [n("a"), n("b")]
    assert out["capturePosition"] == before_request["capturePosition"]
    assert _snapshots(es, n) == [n("snap")]

    # Destroy from the completed record deletes it, and the repository registration mactl made.
    provider.rollback(_ctx(inputs, checkpoints=[], prior=out))
    assert n("repo") not in es.snapshot.get_repository()


def test_destroy_after_a_kill_deletes_the_marked_snapshot(es: OpenSearch, names: Names, es710: Any) -> None:
    n = names
    _seed(es, n)
    provider = SnapshotProvider()
    inputs = _inputs(n, es710)
    recorded: list[dict[str, Any]] = []
    with pytest.raises(Killed):
        provider.apply(_ctx(inputs, checkpoints=recorded, kill_at=2))
    _wait_done(es, n, n("snap"))
    # The stage never recorded outputs: only its checkpoint says what it requested.
    provider.rollback(_ctx(inputs, checkpoints=[], checkpoint_data=recorded[-1]))
    assert n("repo") not in es.snapshot.get_repository()

    # Killed between the checkpoint and the request: nothing to adopt, the rerun creates it.
    recorded = []
    with pytest.raises(Killed):
        provider.apply(_ctx(inputs, checkpoints=recorded, kill_at=1))
    assert n("repo") in es.snapshot.get_repository() and _snapshots(es, n) == []
    out = provider.apply(_ctx(inputs, checkpoints=[], checkpoint_data=recorded[-1]))
    assert out["state"] == "SUCCESS" and _snapshots(es, n) == [n("snap")]
    provider.rollback(_ctx(inputs, checkpoints=[], prior=out))
    assert n("repo") not in es.snapshot.get_repository()


def test_a_failed_attempt_is_deleted_and_retaken_and_a_foreign_one_refused(
    es: OpenSearch, names: Names, es710: Any
) -> None:
    n = names
    _seed(es, n)
    es.indices.create(
        index=n("stuck"),
        body={
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "index.routing.allocation.require._name": "no-such-node",
            }
        },
        params={"wait_for_active_shards": "0"},
    )
    provider = SnapshotProvider()
    inputs = _inputs(n, es710, indices=[{"names": [n("a"), n("b")]}])
    recorded: list[dict[str, Any]] = []
    with pytest.raises(Killed):
        provider.apply(_ctx(inputs, checkpoints=recorded, kill_at=2))
    run = recorded[0]["requested"]["run"]
    es.snapshot.delete(repository=n("repo"), snapshot=n("snap"))
    # Stand-in for an attempt that ended PARTIAL while mactl was dead, carrying this
    # stage's marker from the recorded request.
    es.snapshot.create(
        repository=n("repo"),
        snapshot=n("snap"),
        body={
            "indices": f"{n('a')},{n('stuck')}",
            "partial": True,
            "metadata": {"mactl": {"stage": ADDRESS, "run": run}},
        },
        wait_for_completion=True,
    )
    assert _wait_done(es, n, n("snap"))["state"] == "PARTIAL"
    out = provider.apply(_ctx(inputs, checkpoints=[], checkpoint_data=recorded[-1]))
    assert out["state"] == "SUCCESS" and out["indices"] == [n("a"), n("b")]
    retaken = _wait_done(es, n, n("snap"))
    assert retaken["uuid"] == out["uuid"] and retaken["metadata"]["mactl"]["run"] != run

    # Same name, but another run's marker (or none): never adopted, never deleted.
    es.snapshot.delete(repository=n("repo"), snapshot=n("snap"))
    es.snapshot.create(
        repository=n("repo"),
        snapshot=n("snap"),
        body={"indices": n("a"), "metadata": {"mactl": {"stage": ADDRESS, "run": "someone-else"}}},
        wait_for_completion=True,
    )
    with pytest.raises(ProviderError, match="mactl did not create it"):
        provider.apply(_ctx(inputs, checkpoints=[], checkpoint_data=recorded[-1]))
    provider.rollback(_ctx(inputs, checkpoints=[], checkpoint_data=recorded[-1]))
    assert _snapshots(es, n) == [n("snap")]
