"""ES 7.10.2 → OpenSearch 2.x metadata migration against the real clusters."""

from __future__ import annotations

import pytest
from mactl.providers.metadata import MetadataProvider
from mactl.providers.snapshot import SnapshotProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names, make_ctx

from mactl.metadata.report import render_text
from mactl.schema.metadata import MetadataInputs
from mactl.schema.snapshot import SnapshotInputs

pytestmark = pytest.mark.cluster


PLAIN_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 100}}},
        "price": {"type": "double"},
        "tags": {"type": "keyword"},
        "nested": {"type": "nested", "properties": {"k": {"type": "keyword"}}},
    },
}


def _seed_es(es: OpenSearch, n: Names) -> None:
    put = es.transport.perform_request
    put(
        "PUT",
        f"/_component_template/{n('ct-settings')}",
        body={"template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}},
    )
    put(
        "PUT",
        f"/_component_template/{n('ct-mappings')}",
        body={
            "template": {"mappings": {"properties": {"@timestamp": {"type": "date"}, "message": {"type": "text"}}}},
            "version": 3,
        },
    )
    put(
        "PUT",
        f"/_index_template/{n('it-logs')}",
        body={
            "index_patterns": [n("logs-*")],
            "composed_of": [n("ct-settings"), n("ct-mappings")],
            "priority": 200,
            "template": {"mappings": {"properties": {"level": {"type": "keyword"}}}, "aliases": {n("logs-all"): {}}},
            "_meta": {"owner": "snapmeta"},
        },
    )
    es.indices.put_template(
        name=n("legacy-metrics"),
        body={
            "index_patterns": [n("metrics-*")],
            "order": 5,
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"host": {"type": "keyword"}, "value": {"type": "long"}}},
            "aliases": {n("metrics-all"): {}},
        },
    )
    es.indices.create(index=n("logs-2024"))
    es.indices.create(index=n("metrics-a"))
    es.indices.create(
        index=n("plain"),
        body={
            "settings": {
                "number_of_shards": 2,
                "number_of_replicas": 0,
                "index.soft_deletes.enabled": False,
                "index.refresh_interval": "5s",
            },
            "mappings": PLAIN_MAPPINGS,
            "aliases": {
                n("plain-read"): {"filter": {"term": {"tags": "x"}}, "routing": "1"},
                n("plain-write"): {"is_write_index": True},
            },
        },
    )
    es.indices.create(index=n("skipme"), body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    es.indices.create(index=f".{n('hidden')}", body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})


def _inputs(n: Names, es710, os2, **extra) -> MetadataInputs:  # noqa: ANN001
    return MetadataInputs.model_validate(
        {
            "source": {"name": "es710", "endpoint": es710.url},
            "target": {"name": "os2", "endpoint": os2.url},
            "repository": {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)},
            "snapshotName": n("snap"),
            "indices": [{"names": [f"re:\\.?{n.prefix}.*"]}, {"names": [n("skipme")], "mode": "exclude"}],
            "templateFilters": [{"names": [f"{n.prefix}*"]}],
            **extra,
        }
    )


@pytest.mark.parametrize("read_from", ["snapshot", "live"])
def test_es710_to_os2(es: OpenSearch, target: OpenSearch, names: Names, es710, os2, read_from: str) -> None:  # noqa: ANN001
    n = names
    _seed_es(es, n)
    provider = MetadataProvider()
    inputs = _inputs(n, es710, os2, **{"from": read_from})
    upstream = {}
    if read_from == "snapshot":
        snap_inputs = SnapshotInputs.model_validate(
            {
                "source": inputs.source.model_dump(),
                "repository": inputs.repository.model_dump(),
                "snapshotName": inputs.snapshotName,
                "indices": [f.model_dump() for f in inputs.indices],
            }
        )
        upstream["snapshot.es710.snap"] = SnapshotProvider().apply(
            make_ctx("snapshot.es710.snap", "snapshot", snap_inputs)
        )
        # From here on the metadata comes from the snapshot's files alone.
        es.indices.delete(index=n("plain"))
    outputs = provider.apply(make_ctx("metadata.es710.snap.os2.m0", "metadata", inputs, upstream=upstream))

    created = {(r["kind"], r["name"]) for r in outputs["created"]}
    assert created == {
        ("component_template", n("ct-settings")),
        ("component_template", n("ct-mappings")),
        ("index_template", n("it-logs")),
        ("legacy_template", n("legacy-metrics")),
        ("index", n("logs-2024")),
        ("index", n("metrics-a")),
        ("index", n("plain")),
    }
    # The built-in exclusion is listed, never silent; the user's exclusion is simply not selected.
    assert outputs["excluded"] == [
        {"kind": "index", "name": f".{n('hidden')}", "reason": "system or hidden index (name starts with '.')"}
    ]
    assert not target.indices.exists(index=n("skipme"))

    # Indices: same mappings and aliases as the source.
    for index in (n("logs-2024"), n("metrics-a")):
        src = es.indices.get(index=index)[index]
        dst = target.indices.get(index=index)[index]
        assert dst["mappings"] == src["mappings"], index
        assert dst["aliases"] == src["aliases"], index
    plain_index = target.indices.get(index=n("plain"))[n("plain")]
    assert plain_index["mappings"] == PLAIN_MAPPINGS
    assert plain_index["aliases"] == {
        n("plain-read"): {"filter": {"term": {"tags": "x"}}, "index_routing": "1", "search_routing": "1"},
        n("plain-write"): {"is_write_index": True},
    }
    plain = target.indices.get_settings(index=n("plain"))[n("plain")]["settings"]["index"]
    assert plain["number_of_shards"] == "2" and plain["refresh_interval"] == "5s"

    # Templates work on the target: a new index matching them gets their mappings and aliases.
    target.index(
        index=n("logs-new"), body={"@timestamp": "2024-01-01T00:00:00Z", "message": "hi", "level": "INFO"}, refresh=True
    )
    logs_new = target.indices.get(index=n("logs-new"))[n("logs-new")]
    assert logs_new["mappings"]["properties"]["level"] == {"type": "keyword"}
    assert logs_new["mappings"]["properties"]["@timestamp"] == {"type": "date"}
    assert logs_new["mappings"]["properties"]["message"] == {"type": "text"}
    assert n("logs-all") in logs_new["aliases"]
    target.index(index=n("metrics-new"), body={"host": "a", "value": 3}, refresh=True)
    metrics_new = target.indices.get(index=n("metrics-new"))[n("metrics-new")]
    assert metrics_new["mappings"]["properties"]["host"] == {"type": "keyword"}
    assert metrics_new["mappings"]["properties"]["value"] == {"type": "long"}
    assert n("metrics-all") in metrics_new["aliases"]

    # The report names every item and the transforms that fired.
    rows = {(r["kind"], r["name"]): r for r in outputs["report"]["items"]}
    assert rows[("index", n("plain"))]["outcome"] == "created"
    fired = " ".join(rows[("index", n("plain"))]["transforms"])
    assert "drop-internal-settings" in fired and "index.uuid" in fired and "index.version.created" in fired
    assert "drop-soft-deletes-disabled" in fired
    assert rows[("index", f".{n('hidden')}")]["outcome"] == "excluded"
    text = render_text(outputs["report"])
    assert f"created   index {n('plain')}" in text and "drop-soft-deletes-disabled" in text

    # Rollback deletes exactly what the stage created, and not the index created afterwards.
    ctx = make_ctx("metadata.es710.snap.os2.m0", "metadata", inputs, prior=outputs)
    provider.rollback(ctx)
    for kind, name in created:
        if kind == "index":
            assert not target.indices.exists(index=name)
    assert target.indices.get_template(name=f"{n.prefix}*", params={"ignore": 404}) in ({}, {"status": 404}) or not any(
        k.startswith(n.prefix) for k in target.indices.get_template(name=f"{n.prefix}*", params={"ignore": 404})
    )
    assert target.indices.exists(index=n("logs-new"))


def test_conflict_shows_diff_and_fails_then_skip_and_recreate(
    es: OpenSearch, target: OpenSearch, names: Names, es710, os2
) -> None:  # noqa: ANN001
    n = names
    es.indices.create(
        index=n("c1"),
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"a": {"type": "keyword"}}},
        },
    )
    target.indices.create(
        index=n("c1"),
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"a": {"type": "text"}}},
        },
    )
    target.index(index=n("c1"), body={"a": "keep"}, refresh=True)
    provider = MetadataProvider()
    base = {"from": "live", "indices": [{"names": [n("c1")]}], "templates": False}
    with pytest.raises(Exception) as err:
        provider.apply(make_ctx("metadata.a.b.c.m0", "metadata", _inputs(n, es710, os2, **base)))
    message = str(err.value)
    assert f"index {n('c1')} already exists on the target and differs" in message
    assert '"keyword" to "text"' in message and "nothing was written" in message
    assert target.count(index=n("c1"))["count"] == 1

    skipped = provider.apply(
        make_ctx("metadata.a.b.c.m0", "metadata", _inputs(n, es710, os2, onExisting="skip", **base))
    )
    assert skipped["created"] == []
    assert skipped["report"]["items"][0]["outcome"] == "skipped"
    provider.rollback(
        make_ctx("metadata.a.b.c.m0", "metadata", _inputs(n, es710, os2, onExisting="skip", **base), prior=skipped)
    )
    assert target.count(index=n("c1"))["count"] == 1  # not ours: rollback left it

    recreated = provider.apply(
        make_ctx("metadata.a.b.c.m0", "metadata", _inputs(n, es710, os2, onExisting="recreate", **base))
    )
    assert recreated["created"] == [{"kind": "index", "name": n("c1")}]
    assert target.indices.get_mapping(index=n("c1"))[n("c1")]["mappings"]["properties"]["a"] == {"type": "keyword"}
