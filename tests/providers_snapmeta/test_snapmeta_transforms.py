"""Version and user transforms, checked by creating the results on the real OpenSearch 2.x."""

from __future__ import annotations

import pytest
from mactl.providers.metadata import MetadataProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names, make_ctx

from mactl.audit.checks import check_definition
from mactl.errors import ProviderError
from mactl.metadata import target as tgt
from mactl.metadata.evaluate import evaluate
from mactl.metadata.items import Item, SourceMetadata, index_body
from mactl.schema.metadata import MetadataInputs

pytestmark = pytest.mark.cluster


def _inputs(n: Names, source, os2, **extra) -> MetadataInputs:  # noqa: ANN001
    return MetadataInputs.model_validate(
        {
            "source": {"name": source.name, "endpoint": source.url},
            "target": {"name": "os2", "endpoint": os2.url},
            "repository": {"type": "fs", "name": n("repo"), "location": str(n.repo_dir)},
            "snapshotName": n("snap"),
            "from": "live",
            "templateFilters": [{"names": [f"{n.prefix}*"]}],
            **extra,
        }
    )


def test_old_field_types_become_target_types(target: OpenSearch, names: Names, es710, os2) -> None:  # noqa: ANN001
    """ES 5 `string`, Elastic `flattened`/`dense_vector`: evaluated, then really created on OS 2.x."""
    n = names
    legacy = SourceMetadata(
        "elasticsearch",
        "5.6.16",
        items=[
            Item(
                "index",
                n("old"),
                index_body(
                    {
                        "index": {
                            "number_of_shards": "1",
                            "number_of_replicas": "0",
                            "mapper": {"dynamic": "true"},
                            "version": {"created": "5061699"},
                            "uuid": "u",
                            "creation_date": "1",
                        }
                    },
                    {
                        "doc": {
                            "_all": {"enabled": True},
                            "properties": {
                                "title": {"type": "string", "include_in_all": True},
                                "code": {"type": "string", "index": "not_analyzed"},
                                "labels": {"type": "flattened", "depth_limit": 5},
                                "body": {"type": "text", "similarity": "classic"},
                            },
                        }
                    },
                    {},
                ),
            ),
            Item(
                "legacy_template",
                n("tmpl"),
                {
                    "template": f"{n.prefix}old-*",
                    "order": 0,
                    "settings": {},
                    "mappings": {"doc": {"properties": {"s": {"type": "string"}}}},
                    "aliases": {},
                },
            ),
            Item(
                "index",
                n("vectors"),
                index_body(
                    {"index": {"number_of_shards": "1"}}, {"properties": {"v": {"type": "dense_vector", "dims": 3}}}, {}
                ),
            ),
        ],
    )
    ev = evaluate(_inputs(n, es710, os2, indices=[{"names": [f"{n.prefix}*"]}]), source=legacy)
    by_name = {i.name: i for i in ev.items}
    old = by_name[n("old")]
    assert old.action == "create"
    props = old.body["mappings"]["properties"]
    assert props["title"] == {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    assert props["code"] == {"type": "keyword"}
    assert props["labels"] == {"type": "flat_object"}
    assert props["body"] == {"type": "text"}
    assert "_all" not in old.body["mappings"]
    assert old.body["settings"] == {"index.number_of_shards": "1", "index.number_of_replicas": "0"}
    names_fired = {t.split(":")[0] for t in old.transforms}
    assert {
        "remove-mapping-types",
        "drop-internal-settings",
        "drop-removed-settings",
        "drop-all-field",
        "string-to-text-keyword",
        "flattened-to-flat_object",
        "classic-similarity-to-bm25",
    } <= names_fired
    tmpl = by_name[n("tmpl")]
    assert tmpl.body["index_patterns"] == [f"{n.prefix}old-*"] and "template" not in tmpl.body
    # dense_vector becomes knn_vector, and the target (no k-NN plugin) makes that a per-item failure.
    vectors = by_name[n("vectors")]
    assert vectors.action == "fail" and "knn_vector needs opensearch-knn" in vectors.reason
    assert any(t.startswith("dense_vector-to-knn_vector") for t in vectors.transforms)

    # The target accepts what evaluation produced.
    for item in (tmpl, old):
        tgt.create(target, item.kind, item.name, item.body)
    got = target.indices.get_mapping(index=n("old"))[n("old")]["mappings"]["properties"]
    assert got["labels"] == {"type": "flat_object"} and got["title"]["fields"]["keyword"]["type"] == "keyword"
    target.index(index=n("old-1"), body={"s": "x"}, refresh=True)
    assert target.indices.get_mapping(index=n("old-1"))[n("old-1")]["mappings"]["properties"]["s"]["type"] == "text"


def test_rejected_settings_are_dropped_by_trying(target: OpenSearch, names: Names) -> None:
    n = names
    body = {
        "settings": {
            "index.number_of_shards": "1",
            "index.some_plugin.unknown": "1",
            "index.optimize_auto_generated_id": "true",
        },
        "mappings": {},
        "aliases": {},
    }
    notes = tgt.create(target, "index", n("rejected"), body)
    assert notes and "index.some_plugin.unknown" in notes[0] and "index.optimize_auto_generated_id" in notes[0]
    assert target.indices.exists(index=n("rejected"))


def test_user_transforms_rename_drop_and_callables(
    es: OpenSearch, target: OpenSearch, names: Names, es710, os2
) -> None:  # noqa: ANN001
    n = names
    for suffix in ("keep", "scratch"):
        es.indices.create(
            index=n(suffix),
            body={
                "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                "mappings": {"properties": {"f": {"type": "keyword"}}},
            },
        )
    rename = '{"name": "{{ item.name }}-v2", "body": {{ item.body | tojson }}}'
    inputs = _inputs(
        n,
        es710,
        os2,
        indices=[{"names": [n("keep"), n("scratch")]}],
        templates=False,
        transforms=[
            {"kind": "python", "callable": "snapmeta_user_transforms:drop_scratch"},
            {"kind": "python", "callable": "snapmeta_user_transforms:add_owner_meta"},
            {"kind": "jinja", "template": rename},
        ],
    )
    provider = MetadataProvider()
    out = provider.apply(make_ctx("metadata.es710.s.os2.m0", "metadata", inputs))
    assert out["created"] == [{"kind": "index", "name": n("keep-v2")}]
    mapping = target.indices.get_mapping(index=n("keep-v2"))[n("keep-v2")]["mappings"]
    assert mapping["_meta"] == {"migrated_from": "7.10.2"} and mapping["properties"]["f"] == {"type": "keyword"}
    rows = {r["name"]: r for r in out["report"]["items"]}
    assert rows[n("scratch")]["outcome"] == "skipped" and rows[n("scratch")]["reason"] == "dropped by a user transform"
    assert rows[n("keep-v2")]["sourceName"] == n("keep")
    assert not target.indices.exists(index=n("keep"))
    provider.rollback(make_ctx("metadata.es710.s.os2.m0", "metadata", inputs, prior=out))
    assert not target.indices.exists(index=n("keep-v2"))


def test_transform_errors_name_the_item_and_line(es: OpenSearch, target: OpenSearch, names: Names, es710, os2) -> None:  # noqa: ANN001
    n = names
    es.indices.create(index=n("bad"), body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    template = '{\n  "settings": {{ item.body.settings | tojson }},\n  "mappings": {{ item.body.mapping | tojson }}\n}'
    inputs = _inputs(
        n,
        es710,
        os2,
        indices=[{"names": [n("bad")]}],
        templates=False,
        transforms=[{"kind": "jinja", "template": template}],
    )
    with pytest.raises(ProviderError) as err:
        MetadataProvider().apply(make_ctx("metadata.es710.s.os2.m0", "metadata", inputs))
    message = str(err.value)
    assert f"index '{n('bad')}'" in message and "line 3" in message and "mapping" in message
    assert "nothing was written" in message and not target.indices.exists(index=n("bad"))

    boom = _inputs(
        n,
        es710,
        os2,
        indices=[{"names": [n("bad")]}],
        templates=False,
        transforms=[{"kind": "python", "callable": "snapmeta_user_transforms:explode"}],
        onItemFailure="continue",
    )
    out = MetadataProvider().apply(make_ctx("metadata.es710.s.os2.m0", "metadata", boom))
    row = out["report"]["items"][0]
    assert row["outcome"] == "failed" and "snapmeta_user_transforms:explode failed: KeyError" in row["reason"]
    assert n("bad") in row["reason"] and out["created"] == []


def test_multi_type_mappings_merge_or_fail(target: OpenSearch, names: Names, es710, os2) -> None:  # noqa: ANN001
    """An index created in ES 5 and carried by ES 6 can have several mapping types."""
    n = names
    mappings = {
        "post": {"properties": {"title": {"type": "text"}, "at": {"type": "date"}}},
        "comment": {"_routing": {"required": True}, "properties": {"body": {"type": "text"}, "at": {"type": "date"}}},
    }
    legacy = SourceMetadata(
        "elasticsearch",
        "6.8.24",
        items=[
            Item(
                "index",
                n("multi"),
                index_body(
                    {
                        "index": {
                            "number_of_shards": "1",
                            "number_of_replicas": "0",
                            "mapping": {"single_type": "false"},
                        }
                    },
                    mappings,
                    {},
                ),
            )
        ],
    )
    inputs = _inputs(n, es710, os2, indices=[{"names": [n("multi")]}])
    [merged] = evaluate(inputs, source=legacy).items
    assert merged.action == "create"
    assert merged.body["mappings"] == {
        "_routing": {"required": True},
        "properties": {"title": {"type": "text"}, "at": {"type": "date"}, "body": {"type": "text"}},
    }
    assert "remove-mapping-types: merged mapping types post, comment into one" in merged.transforms
    tgt.create(target, "index", merged.name, merged.body)
    props = target.indices.get_mapping(index=n("multi"))[n("multi")]["mappings"]["properties"]
    assert set(props) == {"title", "at", "body"}

    [refused] = evaluate(inputs.model_copy(update={"multiTypeMode": "fail"}), source=legacy).items
    assert (
        refused.action == "fail"
        and "2 mapping types (post, comment)" in refused.reason
        and "multiTypeMode: union" in refused.reason
    )

    mappings["comment"]["properties"]["at"] = {"type": "keyword"}
    clashing = SourceMetadata(
        "elasticsearch", "6.8.24", items=[Item("index", n("multi"), index_body({}, mappings, {}))]
    )
    [clash] = evaluate(inputs, source=clashing).items
    assert clash.action == "fail" and "mapping types disagree on field 'at'" in clash.reason


def test_target_refusal_is_a_per_item_failure(es: OpenSearch, target: OpenSearch, names: Names, es710, os2) -> None:  # noqa: ANN001
    """An item the target cannot build (an analyzer from a plugin it lacks) fails alone, with the target's reason."""
    n = names
    for suffix in ("ok", "icu"):
        es.indices.create(index=n(suffix), body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    add_icu = (
        "{% set b = item.body %}"
        '{% if item.name.endswith("icu") %}'
        '{% do b.settings.update({"index.analysis.analyzer.folded.type": "custom", "index.analysis.analyzer.folded.tokenizer": "icu_tokenizer"}) %}'
        "{% endif %}{{ b | tojson }}"
    )
    base = {
        "indices": [{"names": [n("ok"), n("icu")]}],
        "templates": False,
        "transforms": [{"kind": "jinja", "template": add_icu}],
    }
    provider = MetadataProvider()
    with pytest.raises(ProviderError) as err:
        provider.apply(make_ctx("metadata.es710.s.os2.m0", "metadata", _inputs(n, es710, os2, **base)))
    assert f"index {n('icu')}: the target refused it:" in str(err.value) and "icu_tokenizer" in str(err.value)
    assert "1 created, recorded for rollback" in str(err.value)

    target.indices.delete(index=n("ok"))
    out = provider.apply(
        make_ctx("metadata.es710.s.os2.m0", "metadata", _inputs(n, es710, os2, onItemFailure="continue", **base))
    )
    assert out["created"] == [{"kind": "index", "name": n("ok")}]
    failed = [r for r in out["report"]["items"] if r["outcome"] == "failed"]
    assert [r["name"] for r in failed] == [n("icu")] and "icu_tokenizer" in failed[0]["reason"]
    assert target.indices.exists(index=n("ok")) and not target.indices.exists(index=n("icu"))


def test_a_setting_the_target_refused_is_not_in_the_recorded_definition(
    es: OpenSearch,
    target: OpenSearch,
    names: Names,
    es710,
    os2,  # noqa: ANN001
) -> None:
    """The definition validation compares against is the body as created: without the setting
    the target refused (and mactl dropped), which the target cannot hold."""
    n = names
    es.indices.create(index=n("plug"), body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    add_plugin_setting = (
        '{% set b = item.body %}{% do b.settings.update({"index.mapcheck_plugin.level": "high"}) %}{{ b | tojson }}'
    )
    base = {"indices": [{"names": [n("plug")]}], "templates": False}
    out = MetadataProvider().apply(
        make_ctx(
            "metadata.es710.s.os2.m0",
            "metadata",
            _inputs(n, es710, os2, transforms=[{"kind": "jinja", "template": add_plugin_setting}], **base),
        )
    )
    (row,) = [r for r in out["report"]["items"] if r["name"] == n("plug")]
    assert any("target refused index.mapcheck_plugin.level" in t for t in row["transforms"]), row
    definition = out["definitions"][n("plug")]
    assert "index.mapcheck_plugin.level" not in definition["settings"]
    assert definition["settings"]["index.number_of_replicas"] == "0"
    assert check_definition({"index": n("plug"), "definition": definition}, target)["passed"]
