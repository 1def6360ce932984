"""Ingest pipelines read by the metadata stage: from the snapshot's global state, else live.

Plus the pure helpers (which settings name a pipeline, which processors a pipeline uses).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mactl.providers.metadata import MetadataProvider
from mactl.providers.snapshot import SnapshotProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names, make_ctx

from mactl.metadata.evaluate import evaluate
from mactl.metadata.items import Item, SourceMetadata, snapshot_pipelines
from mactl.metadata.pipelines import called_pipelines, processor_types, references
from mactl.schema.metadata import MetadataInputs
from mactl.schema.snapshot import SnapshotInputs


def _drop_pipelines(client: OpenSearch, prefix: str) -> None:
    for name in client.transport.perform_request("GET", "/_ingest/pipeline", params={"ignore": 404}) or {}:
        if name.startswith(prefix):
            client.transport.perform_request("DELETE", f"/_ingest/pipeline/{name}")


@pytest.fixture
def clean_pipelines(names: Names, es: OpenSearch, target: OpenSearch) -> Iterator[Names]:
    try:
        yield names
    finally:
        _drop_pipelines(es, names.prefix)
        _drop_pipelines(target, names.prefix)


def _inputs(n: Names, es710, os2, **extra) -> MetadataInputs:  # noqa: ANN001
    return MetadataInputs.model_validate(
        {
            "source": {"name": "es710", "endpoint": es710.url},
            "target": {"name": "os2", "endpoint": os2.url},
            "repository": {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)},
            "snapshotName": n("snap"),
            "indices": [{"names": [f"{n.prefix}*"]}],
            "templateFilters": [{"names": [f"{n.prefix}*"]}],
            **extra,
        }
    )


def _snapshot(inputs: MetadataInputs, *, global_state: bool) -> dict[str, dict]:
    snap_inputs = SnapshotInputs.model_validate(
        {
            "source": inputs.source.model_dump(),
            "repository": inputs.repository.model_dump(),
            "snapshotName": inputs.snapshotName,
            "indices": [f.model_dump() for f in inputs.indices],
            "includeGlobalState": global_state,
        }
    )
    out = SnapshotProvider().apply(make_ctx("snapshot.es710.snap", "snapshot", snap_inputs))
    return {"snapshot.es710.snap": out}


@pytest.mark.cluster
def test_pipelines_come_from_the_snapshot_global_state(
    es: OpenSearch,
    target: OpenSearch,
    clean_pipelines: Names,
    es710,
    os2,  # noqa: ANN001
) -> None:
    n = clean_pipelines
    put = es.transport.perform_request
    put("PUT", f"/_ingest/pipeline/{n('outer')}", body={"description": "as snapshotted", "processors": []})
    put("PUT", f"/_ingest/pipeline/{n('other')}", body={"description": "not referenced", "processors": []})
    es.indices.create(
        index=n("logs"), body={"settings": {"number_of_replicas": 0, "index.default_pipeline": n("outer")}}
    )
    inputs = _inputs(n, es710, os2)
    upstream = _snapshot(inputs, global_state=True)
    # changed on the source after the snapshot: the snapshot's version is the one migrated
    put("PUT", f"/_ingest/pipeline/{n('outer')}", body={"description": "changed later", "processors": []})

    ev = evaluate(inputs, upstream=upstream)
    rows = {(i.kind, i.name): i for i in ev.items}
    assert rows[("pipeline", n("outer"))].body == {"description": "as snapshotted", "processors": []}
    assert ("pipeline", n("other")) not in rows  # include: referenced
    assert rows[("index", n("logs"))].action == "create"

    everything = evaluate(
        _inputs(n, es710, os2, pipelines={"include": "all", "filters": [{"names": [n("o*")]}]}), upstream=upstream
    )
    names = {i.name for i in everything.items if i.kind == "pipeline"}
    assert names == {n("outer"), n("other")}

    provider = MetadataProvider()
    outputs = provider.apply(make_ctx("metadata.es710.snap.os2.m0", "metadata", inputs, upstream=upstream))
    assert {"kind": "pipeline", "name": n("outer")} in outputs["created"]
    got = target.transport.perform_request("GET", f"/_ingest/pipeline/{n('outer')}")
    assert got == {n("outer"): {"description": "as snapshotted", "processors": []}}
    # a second run finds it there, made by this stage: created once, kept in `created`
    again = provider.apply(make_ctx("metadata.es710.snap.os2.m0", "metadata", inputs, upstream=upstream, prior=outputs))
    assert {"kind": "pipeline", "name": n("outer")} in again["created"]
    # `pipelines` changed in place to none: the pipeline it made stays on the books for rollback
    narrowed = _inputs(n, es710, os2, pipelines={"include": "none"})
    third = provider.apply(make_ctx("metadata.es710.snap.os2.m0", "metadata", narrowed, upstream=upstream, prior=again))
    assert {"kind": "pipeline", "name": n("outer")} in third["created"]
    assert ("pipeline", n("outer")) not in {(r["kind"], r["name"]) for r in third["report"]["items"]}
    provider.rollback(make_ctx("metadata.es710.snap.os2.m0", "metadata", narrowed, prior=third))
    assert n("outer") not in target.transport.perform_request("GET", "/_ingest/pipeline", params={"ignore": 404})
    assert not target.indices.exists(index=n("logs"))


@pytest.mark.cluster
def test_without_global_state_pipelines_are_read_live(
    es: OpenSearch,
    target: OpenSearch,
    clean_pipelines: Names,
    es710,
    os2,  # noqa: ANN001
) -> None:
    n = clean_pipelines
    put = es.transport.perform_request
    put("PUT", f"/_ingest/pipeline/{n('p')}", body={"description": "v1", "processors": []})
    es.indices.create(index=n("logs"), body={"settings": {"number_of_replicas": 0, "index.final_pipeline": n("p")}})
    inputs = _inputs(n, es710, os2)
    upstream = _snapshot(inputs, global_state=False)
    put("PUT", f"/_ingest/pipeline/{n('p')}", body={"description": "v2", "processors": []})
    ev = evaluate(inputs, upstream=upstream)
    rows = {(i.kind, i.name): i for i in ev.items}
    # the snapshot did not record the pipelines, so "none" is not assumed: the live one is read
    assert rows[("pipeline", n("p"))].body == {"description": "v2", "processors": []}
    assert rows[("index", n("logs"))].action == "create"


def test_references_name_the_pipeline_settings_of_every_kind() -> None:
    assert references("index", {"settings": {"index.default_pipeline": "a", "index.final_pipeline": "b"}}) == [
        ("index.default_pipeline", "a"),
        ("index.final_pipeline", "b"),
    ]
    assert references("index", {"settings": {"index.default_pipeline": "_none"}}) == []
    assert references("legacy_template", {"settings": {"index.final_pipeline": "c"}}) == [("index.final_pipeline", "c")]
    assert references("component_template", {"template": {"settings": {"index.default_pipeline": "d"}}}) == [
        ("index.default_pipeline", "d")
    ]
    assert references("index_template", {"index_patterns": ["x"]}) == []
    assert references("pipeline", {"processors": []}) == []


def test_processor_types_and_called_pipelines_look_inside_nested_processors() -> None:
    body = {
        "processors": [
            {"set": {"field": "a", "value": 1, "on_failure": [{"append": {"field": "e", "value": "x"}}]}},
            {"foreach": {"field": "t", "processor": {"pipeline": {"name": "inner"}}}},
        ],
        "on_failure": [{"pipeline": {"name": "errors"}}],
    }
    assert processor_types(body) == {"set", "append", "foreach", "pipeline"}
    assert called_pipelines(body) == {"inner", "errors"}
    assert processor_types({"processors": []}) == set()


def test_snapshot_pipelines_read_the_ingest_section() -> None:
    raw = {
        "ingest": {
            "pipeline": [
                {"id": "b", "config": {"processors": []}},
                {"id": "a", "config": {"description": "x", "processors": []}},
                {"id": 3, "config": {}},  # malformed entries are not items
            ]
        }
    }
    items = snapshot_pipelines(raw)
    assert [(i.kind, i.name, i.body) for i in items] == [
        ("pipeline", "a", {"description": "x", "processors": []}),
        ("pipeline", "b", {"processors": []}),
    ]
    assert snapshot_pipelines({}) == []


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("selection", "on_target", "expected"),
    [
        ({"include": "none"}, False, "`pipelines.include: none` leaves it out"),
        ({"include": "referenced", "filters": [{"names": ["nothing-*"]}]}, False, "pipelines.filters leave it out"),
        ({"include": "none"}, True, None),  # the target has it: fine
        ({"include": "referenced"}, False, None),  # migrated: fine
    ],
)
def test_a_reference_that_will_not_resolve_fails_the_index_and_template(
    target: OpenSearch,
    clean_pipelines: Names,
    es710,
    os2,
    selection,
    on_target,
    expected,  # noqa: ANN001
) -> None:
    n = clean_pipelines
    if on_target:
        target.transport.perform_request("PUT", f"/_ingest/pipeline/{n('p')}", body={"processors": []})
    source = SourceMetadata(
        "elasticsearch",
        "7.10.2",
        [
            Item("pipeline", n("p"), {"processors": []}),
            Item("index", n("logs"), {"settings": {"index.default_pipeline": n("p")}, "mappings": {}, "aliases": {}}),
            Item("component_template", n("ct"), {"template": {"settings": {"index.final_pipeline": n("p")}}}),
        ],
        pipelines_origin="live",
    )
    ev = evaluate(_inputs(n, es710, os2, pipelines=selection), source=source)
    rows = {(i.kind, i.name): i for i in ev.items}
    index, template = rows[("index", n("logs"))], rows[("component_template", n("ct"))]
    if expected is None:
        assert index.action == template.action == "create"
        assert (("pipeline", n("p")) in rows) == (selection["include"] != "none")
        return
    assert index.action == template.action == "fail"
    assert f"index.default_pipeline names ingest pipeline '{n('p')}', which will not be on the target: {expected}" in (
        index.reason
    )
    assert "every document written to it would be rejected" in index.reason
    assert f"index.final_pipeline names ingest pipeline '{n('p')}'" in template.reason
    assert ("pipeline", n("p")) not in rows
