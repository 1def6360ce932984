"""OpenSearch 1.3 → OpenSearch 2.x, and per-index rollback between two metadata stages."""

from __future__ import annotations

import pytest
from mactl.providers.base import Fact
from mactl.providers.metadata import MetadataProvider
from mactl.providers.snapshot import SnapshotProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names, make_ctx

from mactl.schema.metadata import MetadataInputs
from mactl.schema.snapshot import SnapshotInputs

pytestmark = pytest.mark.cluster


def _inputs(n: Names, os13, os2, indices: list[str], read_from: str, **extra) -> MetadataInputs:  # noqa: ANN001
    return MetadataInputs.model_validate(
        {
            "source": {"name": "os13", "endpoint": os13.url},
            "target": {"name": "os2", "endpoint": os2.url},
            "repository": {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)},
            "snapshotName": n("snap"),
            "from": read_from,
            "indices": [{"names": indices}],
            "templateFilters": [{"names": [f"{n.prefix}*"]}],
            **extra,
        }
    )


@pytest.mark.parametrize("read_from", ["snapshot", "live"])
def test_os13_to_os2_and_per_index_rollback(
    opensearch13: OpenSearch, target: OpenSearch, names: Names, os13, os2, read_from: str
) -> None:  # noqa: ANN001
    n = names
    src = opensearch13
    src.indices.put_template(
        name=n("tmpl"),
        body={
            "index_patterns": [n("events-*")],
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"kind": {"type": "keyword"}}},
        },
    )
    src.indices.create(
        index=n("events-1"),
        body={
            "settings": {"index.soft_deletes.enabled": False, "index.translog.retention.size": "1gb"},
            "mappings": {"properties": {"at": {"type": "date", "format": "epoch_millis"}}},
            "aliases": {n("events"): {"is_write_index": True}},
        },
    )
    src.indices.create(
        index=n("users"),
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "_source": {"excludes": ["secret"]},
                "properties": {"name": {"type": "text"}, "secret": {"type": "keyword"}},
            },
        },
    )
    provider = MetadataProvider()

    # Two metadata stages, one index each (as two migrations of one snapshot would be).
    in_events = _inputs(n, os13, os2, [n("events-*")], read_from)
    in_users = _inputs(n, os13, os2, [n("users")], read_from, templates=False)
    upstream = {}
    if read_from == "snapshot":
        snap_inputs = SnapshotInputs.model_validate(
            {
                "source": in_events.source.model_dump(),
                "repository": in_events.repository.model_dump(),
                "snapshotName": n("snap"),
                "indices": [{"names": [f"{n.prefix}*"]}],
            }
        )
        upstream["snapshot.os13.s"] = SnapshotProvider().apply(make_ctx("snapshot.os13.s", "snapshot", snap_inputs))
        assert upstream["snapshot.os13.s"]["sourceVersion"] == "1.3.20"
    out_events = provider.apply(make_ctx("metadata.os13.s.os2.events", "metadata", in_events, upstream=upstream))
    out_users = provider.apply(make_ctx("metadata.os13.s.os2.users", "metadata", in_users, upstream=upstream))
    assert {(r["kind"], r["name"]) for r in out_events["created"]} == {
        ("legacy_template", n("tmpl")),
        ("index", n("events-1")),
    }
    assert out_users["created"] == [{"kind": "index", "name": n("users")}]
    for index in (n("events-1"), n("users")):
        assert target.indices.get_mapping(index=index)[index] == src.indices.get_mapping(index=index)[index]
    assert target.indices.get_alias(index=n("events-1"))[n("events-1")]["aliases"] == {
        n("events"): {"is_write_index": True}
    }
    fired = next(r for r in out_events["report"]["items"] if r["name"] == n("events-1"))["transforms"]
    assert any(t.startswith("drop-soft-deletes-disabled") for t in fired)
    assert out_events["sourceVersion"] == "1.3.20" and out_events["targetVersion"].startswith("2.")

    # A document written afterwards lands in the users index: rolling back `events` must not touch it.
    target.index(index=n("users"), body={"name": "ann", "secret": "s"}, refresh=True)
    provider.rollback(make_ctx("metadata.os13.s.os2.events", "metadata", in_events, prior=out_events))
    assert not target.indices.exists(index=n("events-1"))
    assert n("tmpl") not in target.indices.get_template(name=f"{n.prefix}*", params={"ignore": 404})
    assert target.count(index=n("users"))["count"] == 1

    # Refresh of the users stage: unchanged facts; after an outside delete, the index is named as missing.
    ctx_users = make_ctx("metadata.os13.s.os2.users", "metadata", in_users, prior=out_users)
    fresh = provider.read(ctx_users)
    assert fresh is not None and provider.facts(fresh) == provider.facts(out_users)
    target.indices.delete(index=n("users"))
    drifted = provider.read(ctx_users)
    assert drifted is not None and drifted["created"] == out_users["created"]
    assert provider.facts(drifted)[f"index {n('users')}"] == Fact("missing on the target", redo=True)
