"""The ES 8 and OpenSearch → 3.x rules, checked by creating their results on the real targets.

What the local Elasticsearch 8 can create (its integ-test build has no x-pack mapper
plugins) comes from it, read back as it reports it; the x-pack types come as bodies. Each
evaluated item is created on OpenSearch 3.5 (with the k-NN plugin) or 2.19, and the
target's own mapping is compared with what evaluation said it would be.
Only `lucene` k-NN fields are created: the local k-NN build has no native engines.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch

from mactl.metadata import target as tgt
from mactl.metadata.evaluate import evaluate
from mactl.metadata.items import Item, SourceMetadata
from mactl.schema.metadata import MetadataInputs

pytestmark = pytest.mark.cluster


@pytest.fixture
def prefix(es8: Any, os3: Any, os2: Any) -> Iterator[str]:
    p = f"v8t-{uuid.uuid4().hex[:8]}-"
    yield p
    for cluster in (es8, os3, os2):
        OpenSearch(cluster.url, timeout=60).indices.delete(index=f"{p}*", params={"ignore_unavailable": "true"})


def _evaluate(source: Any, target: Any, items: list[Item], version: str) -> dict[str, Any]:
    inputs = MetadataInputs.model_validate(
        {
            "source": {"name": "src", "endpoint": source.url},
            "target": {"name": "tgt", "endpoint": target.url},
            "repository": {"type": "fs", "name": "unused", "location": "/nonexistent"},
            "snapshotName": "unused",
            "from": "live",
            "indices": [{"names": ["*"]}],
        }
    )
    ev = evaluate(inputs, source=SourceMetadata("elasticsearch", version, items=items))
    return {i.name: i for i in ev.items}


def _created_mapping(client: OpenSearch, item: Any) -> dict[str, Any]:
    tgt.create(client, item.kind, item.name, item.body)
    return dict(client.indices.get_mapping(index=item.name)[item.name]["mappings"])


ES8_INDEX = {
    "settings": {"index": {"mode": "time_series", "routing_path": ["host"], "number_of_replicas": 0}},
    "mappings": {
        "subobjects": False,
        "runtime": {"day": {"type": "keyword"}},
        "properties": {
            "@timestamp": {"type": "date"},
            "host": {"type": "keyword", "time_series_dimension": True},
            "cpu": {"type": "double", "time_series_metric": "gauge"},
            "v": {"type": "dense_vector", "dims": 4},  # 8.19: int8_hnsw, cosine
            "l2": {
                "type": "dense_vector",
                "dims": 4,
                "similarity": "l2_norm",
                "index_options": {"type": "hnsw", "m": 24, "ef_construction": 128},
            },
            "b": {"type": "dense_vector", "dims": 8, "element_type": "byte", "similarity": "dot_product"},
            "bits": {"type": "dense_vector", "dims": 16, "element_type": "bit"},
            "u": {"type": "dense_vector", "dims": 4, "index": False},
            "tokens": {"type": "sparse_vector"},
            "labels": {"type": "flattened"},
        },
    },
}


def test_an_es8_index_as_es8_reports_it_is_created_on_opensearch_3(es8: Any, os3: Any, prefix: str) -> None:
    source = OpenSearch(es8.url, timeout=60)
    name = f"{prefix}tsdb"
    source.indices.create(index=name, body=ES8_INDEX)
    got = source.indices.get(index=name, params={"flat_settings": "true"})[name]
    version = source.transport.perform_request("GET", "/_nodes/_local", params={"filter_path": "nodes.*.version"})
    item = Item("index", name, {k: got[k] for k in ("settings", "mappings", "aliases")})
    (es_version,) = {n["version"] for n in version["nodes"].values()}
    ev = _evaluate(es8, os3, [item], es_version)[name]
    assert ev.action == "create", ev.reason
    fired = {t.split(":", 1)[0] for t in ev.transforms}
    assert {
        "drop-internal-settings",
        "es8-drop-settings",
        "es8-drop-mapping-parameters",
        "es8-field-types",
        "flattened-to-flat_object",
        "dense_vector-to-knn_vector",
    } <= fired
    mapping = _created_mapping(OpenSearch(os3.url, timeout=60), ev)
    assert mapping == ev.body["mappings"]  # the target holds exactly what evaluation said
    p = mapping["properties"]
    assert p["v"]["method"] == {
        "name": "hnsw",
        "engine": "lucene",
        "space_type": "cosinesimil",
        "parameters": {"m": 16, "ef_construction": 100, "encoder": {"name": "sq", "parameters": {}}},
    }
    assert p["l2"]["method"]["parameters"] == {"m": 24, "ef_construction": 128}
    assert p["b"]["data_type"] == "BYTE" and p["b"]["method"]["space_type"] == "innerproduct"
    assert p["bits"]["data_type"] == "BINARY" and p["bits"]["method"]["space_type"] == "hamming"
    assert p["tokens"] == {"type": "rank_features"} and p["labels"] == {"type": "flat_object"}
    assert p["host"] == {"type": "keyword"} and "runtime" not in mapping and "subobjects" not in mapping
    settings = OpenSearch(os3.url, timeout=60).indices.get_settings(index=name)[name]["settings"]["index"]
    assert settings["knn"] == "true" and "mode" not in settings and "routing_path" not in settings


XPACK_TYPES = {
    "ver": {"type": "version"},
    "msg": {"type": "match_only_text"},
    "wc": {"type": "wildcard"},
    "env": {"type": "constant_keyword", "value": "prod"},
    "agg": {
        "type": "aggregate_metric_double",
        "metrics": ["min", "max", "sum", "value_count"],
        "default_metric": "max",
    },
    "ck": {"type": "counted_keyword"},
    "n": {"type": "unsigned_long"},
}


@pytest.mark.parametrize("target_name", ["os3", "os2"])
def test_xpack_field_types_are_created_on_each_target(
    target_name: str, request: pytest.FixtureRequest, es8: Any, prefix: str
) -> None:
    target = request.getfixturevalue(target_name)
    name = f"{prefix}xpack-{target_name}"
    body = {"settings": {"index.number_of_shards": "1"}, "mappings": {"properties": XPACK_TYPES}, "aliases": {}}
    refused = {
        "settings": {"index.number_of_shards": "1"},
        "mappings": {"properties": {"h": {"type": "histogram"}, "st": {"type": "semantic_text", "inference_id": "x"}}},
        "aliases": {},
    }
    by_name = _evaluate(es8, target, [Item("index", name, body), Item("index", f"{name}-no", refused)], "8.19.21")
    ev = by_name[name]
    assert ev.action == "create", ev.reason
    mapping = _created_mapping(OpenSearch(target.url, timeout=60), ev)
    assert mapping == ev.body["mappings"]
    p = mapping["properties"]
    assert p["ver"]["type"] == ("version" if target_name == "os3" else "keyword")
    assert p["agg"]["properties"]["value_count"] == {"type": "long"} and p["ck"] == {"type": "keyword"}
    assert p["env"] == {"type": "constant_keyword", "value": "prod"}
    no = by_name[f"{name}-no"]
    assert no.action == "fail" and "'h' is histogram" in no.reason and "'st' is semantic_text" in no.reason


def test_opensearch_2_knn_fields_are_created_on_opensearch_3(os2: Any, os3: Any, prefix: str) -> None:
    """nmslib (refused by 3.x, tried first below) and OpenSearch 1.x index-level k-NN settings."""
    client = OpenSearch(os3.url, timeout=60)
    nmslib = {
        "type": "knn_vector",
        "dimension": 4,
        "method": {
            "name": "hnsw",
            "engine": "nmslib",
            "space_type": "innerproduct",
            "parameters": {"m": 16, "ef_construction": 64},
        },
    }
    refusal = client.indices.create(
        index=f"{prefix}raw",
        body={"settings": {"index.knn": True}, "mappings": {"properties": {"e": nmslib}}},
        params={"ignore": 400},
    )
    assert "nmslib engine is deprecated" in str(refusal)
    items = [
        Item(
            "index",
            f"{prefix}nm",
            {"settings": {"index.knn": "true"}, "mappings": {"properties": {"e": nmslib}}, "aliases": {}},
        ),
        Item(
            "index",
            f"{prefix}os1",
            {
                "settings": {
                    "index.knn": "true",
                    "index.knn.space_type": "cosinesimil",
                    "index.knn.algo_param.m": "24",
                },
                "mappings": {"properties": {"e": {"type": "knn_vector", "dimension": 4}}},
                "aliases": {},
            },
        ),
    ]
    inputs = MetadataInputs.model_validate(
        {
            "source": {"name": "src", "endpoint": os2.url},
            "target": {"name": "tgt", "endpoint": os3.url},
            "repository": {"type": "fs", "name": "unused", "location": "/nonexistent"},
            "snapshotName": "unused",
            "from": "live",
            "indices": [{"names": ["*"]}],
        }
    )
    by_name = {i.name: i for i in evaluate(inputs, source=SourceMetadata("opensearch", "2.19.6", items=items)).items}
    for ev in by_name.values():
        assert ev.action == "create", ev.reason
        assert _created_mapping(client, ev) == ev.body["mappings"]
    assert by_name[f"{prefix}nm"].body["mappings"]["properties"]["e"]["method"]["engine"] == "lucene"
    os1 = by_name[f"{prefix}os1"].body["mappings"]["properties"]["e"]["method"]
    assert os1 == {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil", "parameters": {"m": 24}}
