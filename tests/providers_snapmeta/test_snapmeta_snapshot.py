"""The snapshot provider against the real ES 7.10.2 source and its fs repository."""

from __future__ import annotations

import pytest
from mactl.providers.snapshot import SnapshotProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names, Recorder, make_ctx

from mactl.capture import log as capture_log
from mactl.errors import ProviderError
from mactl.schema.snapshot import SnapshotInputs

pytestmark = pytest.mark.cluster


def _inputs(n: Names, cluster, **extra) -> SnapshotInputs:  # noqa: ANN001
    return SnapshotInputs.model_validate(
        {
            "source": {"name": cluster.name, "endpoint": cluster.url},
            "repository": {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)},
            "snapshotName": n("snap"),
            **extra,
        }
    )


def _seed(client: OpenSearch, n: Names) -> None:
    for name, shards in (("a", 2), ("b", 1), ("c", 1)):
        client.indices.create(index=n(name), body={"settings": {"number_of_shards": shards, "number_of_replicas": 0}})
        client.index(index=n(name), body={"v": name}, refresh=True)


def test_create_read_drift_and_rollback(es: OpenSearch, names: Names, es710, tmp_path) -> None:  # noqa: ANN001
    n = names
    _seed(es, n)
    # A real capture log (file backend) with two records already captured.
    log = {"type": "file", "path": str(tmp_path / "capture")}
    capture_log.init_log(log)
    writer = capture_log.open_writer(log, "proxy-1")
    writer.append("k1", b"PUT /x/_doc/1")
    writer.append("k2", b"PUT /x/_doc/2")
    provider = SnapshotProvider()
    inputs = _inputs(
        n,
        es710,
        indices=[{"names": [f"{n.prefix}*"]}, {"names": [n("c")], "mode": "exclude"}],
        maxSnapshotRateMbPerNode=20,
    )
    rec = Recorder()
    upstream = {"capture.es710": {"log": log, "position": {"kind": "file", "offsets": {"proxy-1": 0}}}}
    out = provider.apply(make_ctx("snapshot.es710.s1", "snapshot", inputs, recorder=rec, upstream=upstream))

    assert out["name"] == n("snap") and out["state"] == "SUCCESS" and out["createdByMactl"] is True
    assert out["indices"] == [n("a"), n("b")]
    assert out["shardCount"] == 3
    assert out["sourceVersion"] == "7.10.2" and out["sourceDistribution"] == "elasticsearch"
    assert out["repository"] == {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)}
    # The log's end when the snapshot began: the replayer starts after the two records.
    assert out["capturePosition"]["kind"] == "capture"
    assert out["capturePosition"]["position"]["offsets"] == {"proxy-1": 2}
    assert out["startTime"] and out["endTime"] and out["uuid"]
    # Progress counted shards up to all of them; the repository really holds the snapshot files.
    assert (
        rec.progress
        and rec.progress[-1].done == 3
        and rec.progress[-1].total == 3
        and rec.progress[-1].unit == "shards"
    )
    assert any(p.name.startswith("snap-") for p in n.repo_dir.iterdir())
    repo = es.snapshot.get_repository(repository=n("repo"))[n("repo")]
    assert repo["settings"]["max_snapshot_bytes_per_sec"] == f"{20 * 1024 * 1024}b"

    # Refresh: unchanged, then drift once someone deletes it behind mactl's back.
    assert provider.read(make_ctx("snapshot.es710.s1", "snapshot", inputs, prior=out)) == out
    es.snapshot.delete(repository=n("repo"), snapshot=n("snap"))
    assert provider.read(make_ctx("snapshot.es710.s1", "snapshot", inputs, prior=out)) is None

    # Apply again (re-create), then rollback deletes it because mactl made it.
    out2 = provider.apply(make_ctx("snapshot.es710.s1", "snapshot", inputs))
    assert out2["uuid"] != out["uuid"]
    provider.rollback(make_ctx("snapshot.es710.s1", "snapshot", inputs, prior=out2))
    assert es.snapshot.get(repository=n("repo"), snapshot="_all")["snapshots"] == []


def test_existing_snapshot_import_never_deletes(es: OpenSearch, names: Names, es710) -> None:  # noqa: ANN001
    n = names
    _seed(es, n)
    es.snapshot.create_repository(repository=n("repo"), body={"type": "fs", "settings": {"location": str(n.repo_dir)}})
    es.snapshot.create(repository=n("repo"), snapshot=n("theirs"), body={"indices": n("a")}, wait_for_completion=True)
    provider = SnapshotProvider()
    inputs = _inputs(n, es710, existing=True, snapshotName=n("theirs"))
    out = provider.apply(make_ctx("snapshot.es710.s1", "snapshot", inputs))
    assert out["createdByMactl"] is False and out["indices"] == [n("a")] and out["state"] == "SUCCESS"
    provider.rollback(make_ctx("snapshot.es710.s1", "snapshot", inputs, prior=out))
    assert [s["snapshot"] for s in es.snapshot.get(repository=n("repo"), snapshot="_all")["snapshots"]] == [n("theirs")]

    missing = _inputs(n, es710, existing=True, snapshotName=n("nope"))
    with pytest.raises(ProviderError, match=f"existing snapshot '{n('nope')}' is not in repository"):
        provider.apply(make_ctx("snapshot.es710.s1", "snapshot", missing))

    # A non-imported stage refuses to adopt a snapshot it did not create.
    with pytest.raises(ProviderError, match="mactl did not create it"):
        provider.apply(make_ctx("snapshot.es710.s1", "snapshot", _inputs(n, es710, snapshotName=n("theirs"))))


def test_repository_errors_are_clear(es: OpenSearch, names: Names, es710) -> None:  # noqa: ANN001
    n = names
    _seed(es, n)
    provider = SnapshotProvider()
    outside = _inputs(n, es710).model_copy(
        update={
            "repository": SnapshotInputs.model_fields["repository"].annotation(
                type="fs", name=n("repo"), location="/var/tmp/not-path-repo"
            )
        }
    )
    with pytest.raises(ProviderError) as err:
        provider.apply(make_ctx("snapshot.es710.s1", "snapshot", outside))
    assert "is not under the source's path.repo" in err.value.message and str(n.repo_dir.parent.parent) in str(
        err.value
    )

    s3 = _inputs(n, es710).model_copy(
        update={
            "repository": SnapshotInputs.model_fields["repository"].annotation(
                type="s3",
                name=n("repo"),
                bucket="snapmeta-bucket",
                endpoint="http://127.0.0.1:19500",
                region="us-east-1",
            )
        }
    )
    with pytest.raises(ProviderError, match="no repository-s3 plugin"):
        provider.apply(make_ctx("snapshot.es710.s1", "snapshot", s3))

    nothing = _inputs(n, es710, indices=[{"names": [n("zzz-*")]}])
    with pytest.raises(ProviderError, match="matches no index"):
        provider.apply(make_ctx("snapshot.es710.s1", "snapshot", nothing))
    assert SnapshotProvider().validate(_inputs(n, es710, indices=[{"names": ["re:("]}]))


def test_unsnapshottable_index_fails_naming_it(es: OpenSearch, names: Names, es710) -> None:  # noqa: ANN001
    """An index whose primary is unassigned cannot be snapshotted (partial: false): the error names it."""
    n = names
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
    with pytest.raises(ProviderError) as err:
        SnapshotProvider().apply(
            make_ctx("snapshot.es710.s1", "snapshot", _inputs(n, es710, indices=[{"names": [n("stuck")]}]))
        )
    assert f"snapshot '{n('snap')}' could not start" in err.value.message and n("stuck") in err.value.message
