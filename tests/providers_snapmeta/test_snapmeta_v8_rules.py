"""The ES 8 → OpenSearch and OpenSearch → 3.x metadata rules, on item bodies (no cluster).

`test_snapmeta_v8_targets.py` creates what these produce on the real OpenSearch targets;
here each rule's decision is pinned: what it maps, what it refuses and by which name.
"""

from __future__ import annotations

from typing import Any

import pytest

from mactl.metadata.evaluate import _evaluate_one
from mactl.metadata.items import Item, index_body
from mactl.metadata.user_transforms import UserTransforms
from mactl.metadata.version_transforms import TargetProfile
from mactl.schema.common import TransformSpec

ES8_TO_OS3 = TargetProfile("elasticsearch", "8.19.21", "opensearch", "3.5.0")
ES8_TO_OS2 = TargetProfile("elasticsearch", "8.19.21", "opensearch", "2.19.6")
OS2_TO_OS3 = TargetProfile("opensearch", "2.19.6", "opensearch", "3.5.0")
OS2_TO_OS2 = TargetProfile("opensearch", "2.11.0", "opensearch", "2.19.6")


def _index(props: dict[str, Any], settings: dict[str, Any] | None = None, **root: Any) -> Item:
    return Item(
        "index",
        "i",
        index_body({"index": {"number_of_shards": "1", **(settings or {})}}, {"properties": props, **root}, {}),
    )


def _run(item: Item, profile: TargetProfile, user: UserTransforms | None = None) -> Any:
    return _evaluate_one(item, profile, user or UserTransforms([]))


def _vector(**spec: Any) -> dict[str, Any]:
    return {"type": "dense_vector", "dims": 4, **spec}


def test_dense_vector_maps_each_similarity_and_quantization_to_its_knn_counterpart() -> None:
    item = _index(
        {
            "cos": _vector(
                similarity="cosine", index=True, index_options={"type": "hnsw", "m": 24, "ef_construction": 200}
            ),
            "l2": _vector(similarity="l2_norm", index=True),
            "dot": _vector(similarity="dot_product", index=True),
            "mip": _vector(similarity="max_inner_product"),
            "q8": _vector(
                similarity="cosine",
                index=True,
                index_options={"type": "int8_hnsw", "m": 16, "ef_construction": 100, "confidence_interval": 0.95},
            ),
            "sq": _vector(index=True, index_options={"type": "int8_hnsw"}),
            "b": _vector(element_type="byte", similarity="l2_norm", index=True),
            "bits": {"type": "dense_vector", "dims": 64, "element_type": "bit", "index": True},
            "raw": _vector(index=False),
        }
    )
    got = _run(item, ES8_TO_OS3)
    assert got.action == "create", got.reason
    p = got.body["mappings"]["properties"]
    assert p["cos"] == {
        "type": "knn_vector",
        "dimension": 4,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": "cosinesimil",
            "parameters": {"m": 24, "ef_construction": 200},
        },
    }
    assert p["l2"]["method"]["parameters"] == {}  # as the target writes it back
    assert p["l2"]["method"]["space_type"] == "l2"
    assert p["dot"]["method"]["space_type"] == p["mip"]["method"]["space_type"] == "innerproduct"
    assert p["q8"]["method"]["parameters"] == {
        "m": 16,
        "ef_construction": 100,
        "encoder": {"name": "sq", "parameters": {"confidence_interval": 0.95}},
    }
    assert p["sq"]["method"]["parameters"]["encoder"] == {"name": "sq", "parameters": {}}
    assert p["b"]["data_type"] == "BYTE" and p["b"]["method"]["engine"] == "lucene"  # as 3.5 echoes it
    assert p["bits"]["data_type"] == "BINARY" and p["bits"]["method"]["engine"] == "lucene"
    assert p["bits"]["method"]["space_type"] == "hamming"
    # unindexed, but in a k-NN index: an explicit lucene graph rather than the engine default
    assert p["raw"] == {
        "type": "knn_vector",
        "dimension": 4,
        "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2", "parameters": {}},
    }
    assert got.body["settings"]["index.knn"] == "true"
    fired = [t for t in got.transforms if t.startswith("dense_vector-to-knn_vector")]
    assert len(fired) == 1 and "q8 (int8_hnsw → lucene hnsw cosinesimil sq)" in fired[0]


def test_only_unindexed_vectors_leave_index_knn_unset() -> None:
    got = _run(_index({"raw": _vector(index=False)}), ES8_TO_OS2)
    assert got.action == "create" and "index.knn" not in got.body["settings"]
    assert got.body["mappings"]["properties"]["raw"] == {"type": "knn_vector", "dimension": 4}
    bits_on_2 = _run(_index({"b": {"type": "dense_vector", "dims": 8, "element_type": "bit"}}), ES8_TO_OS2)
    assert bits_on_2.body["mappings"]["properties"]["b"]["method"]["engine"] == "faiss"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        (_vector(index=True, index_options={"type": "int4_hnsw"}), "int4_hnsw"),
        (_vector(index=True, index_options={"type": "bbq_hnsw"}), "bbq_hnsw"),
        (_vector(index=True, index_options={"type": "flat"}), "'flat'"),
        (_vector(index=True, index_options={"type": "int8_flat"}), "int8_flat"),
        ({"type": "dense_vector", "index": True}, "no `dims`"),
    ],
)
def test_vectors_that_cannot_keep_their_search_refuse_by_field_name(spec: dict[str, Any], named: str) -> None:
    got = _run(_index({"emb": spec}), ES8_TO_OS3)
    assert got.action == "fail"
    assert "'emb'" in got.reason and named in got.reason and "user transform" in got.reason


def test_es8_settings_and_mapping_parameters_are_dropped_and_named() -> None:
    item = _index(
        {
            "host": {"type": "keyword", "time_series_dimension": True},
            "cpu": {"type": "double", "time_series_metric": "gauge"},
        },
        {
            "mode": "time_series",
            "routing_path": ["host"],
            "time_series": {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-02-01T00:00:00Z"},
            "codec": "legacy_best_compression",
            "mapping": {"source": {"mode": "synthetic"}},
        },
        _source={"mode": "synthetic"},
        subobjects=False,
        dynamic="runtime",
        runtime={"day": {"type": "keyword"}},
    )
    got = _run(item, ES8_TO_OS2)
    assert got.action == "create", got.reason
    settings, mappings = got.body["settings"], got.body["mappings"]
    for gone in ("index.mode", "index.routing_path", "index.time_series.start_time", "index.mapping.source.mode"):
        assert gone not in settings
    assert settings["index.codec"] == "best_compression"
    assert mappings["properties"] == {"host": {"type": "keyword"}, "cpu": {"type": "double"}}
    assert mappings["dynamic"] == "false" and not {"_source", "subobjects", "runtime"} & set(mappings)
    text = "\n".join(got.transforms)
    assert "es8-drop-settings: ES 8-only settings: index.mode=time_series" in text
    assert "host.time_series_dimension" in text and "runtime fields dropped" in text and "day" in text


def test_es8_field_types_map_by_documented_rule_or_refuse_by_name() -> None:
    item = _index(
        {
            "v": {"type": "version"},
            "tokens": {"type": "sparse_vector"},
            "agg": {
                "type": "aggregate_metric_double",
                "metrics": ["min", "max", "value_count"],
                "default_metric": "max",
            },
            "ck": {"type": "counted_keyword"},
            "loc": {"type": "point"},
            "msg": {"type": "match_only_text"},
            "w": {"type": "wildcard"},
            "c": {"type": "constant_keyword", "value": "prod"},
        }
    )
    got = _run(item, ES8_TO_OS3)
    assert got.action == "create", got.reason
    p = got.body["mappings"]["properties"]
    assert p["v"] == {"type": "version", "index": True}  # OpenSearch 3.5 has it (2.19 does not: see below)
    assert p["tokens"] == {"type": "rank_features"}
    assert p["agg"] == {
        "properties": {"min": {"type": "double"}, "max": {"type": "double"}, "value_count": {"type": "long"}}
    }
    assert p["ck"] == {"type": "keyword"} and p["loc"] == {"type": "xy_point"}
    # OpenSearch has these three itself (found by trying on 2.19): kept as they are
    assert p["msg"] == {"type": "match_only_text"} and p["w"] == {"type": "wildcard", "doc_values": True}
    assert p["c"] == {"type": "constant_keyword", "value": "prod"}

    refused = _run(
        _index(
            {
                "body": {"type": "semantic_text", "inference_id": "e5"},
                "latency": {"type": "histogram"},
                "odd": {"type": "mystery"},
                "day": {"type": "keyword", "script": {"source": "emit('x')"}},
            }
        ),
        ES8_TO_OS3,
    )
    assert refused.action == "fail"
    for name in (
        "'body' is semantic_text",
        "'latency' is histogram",
        "'odd' has type mystery",
        "'day' is computed by a script",
    ):
        assert name in refused.reason


def test_a_user_transform_can_rewrite_what_a_rule_refuses() -> None:
    fix = TransformSpec.model_validate({"kind": "python", "callable": "snapmeta_user_transforms:semantic_text_as_text"})
    got = _run(_index({"body": {"type": "semantic_text", "inference_id": "e5"}}), ES8_TO_OS3, UserTransforms([fix]))
    assert got.action == "create", got.reason
    assert got.body["mappings"]["properties"]["body"] == {"type": "text"}


def test_older_targets_get_the_older_substitutes() -> None:
    old = TargetProfile("elasticsearch", "8.15.0", "opensearch", "2.11.0")
    got = _run(_index({"msg": {"type": "match_only_text"}, "w": {"type": "wildcard"}, "v": {"type": "version"}}), old)
    assert got.body["mappings"]["properties"] == {
        "msg": {"type": "text", "index_options": "docs", "norms": False},
        "w": {"type": "keyword"},
        "v": {"type": "keyword"},
    }
    refused = _run(_index({"c": {"type": "constant_keyword", "value": "x"}}), old)
    assert refused.action == "fail" and "'c'" in refused.reason and "2.14" in refused.reason


def _knn(engine: str, space: str = "l2", **extra: Any) -> dict[str, Any]:
    return {
        "type": "knn_vector",
        "dimension": 4,
        "method": {
            "name": "hnsw",
            "engine": engine,
            "space_type": space,
            "parameters": {"m": 16, "ef_construction": 128},
        },
        **extra,
    }


def test_nmslib_becomes_lucene_only_for_opensearch_3() -> None:
    item = _index({"e": _knn("nmslib", "cosinesimil"), "f": _knn("lucene")}, {"knn": "true"})
    on3 = _run(item, OS2_TO_OS3)
    assert on3.action == "create", on3.reason
    assert on3.body["mappings"]["properties"]["e"]["method"] == {
        "name": "hnsw",
        "engine": "lucene",
        "space_type": "cosinesimil",
        "parameters": {"m": 16, "ef_construction": 128},
    }
    assert any(t.startswith("os3-nmslib-to-lucene: ") and "e (cosinesimil)" in t for t in on3.transforms)
    on2 = _run(item, OS2_TO_OS2)
    assert on2.body["mappings"]["properties"]["e"]["method"]["engine"] == "nmslib" and on2.transforms == []


def test_nmslib_spaces_faiss_lacks_and_trained_models_refuse() -> None:
    l1 = _run(_index({"e": _knn("nmslib", "l1")}, {"knn": "true"}), OS2_TO_OS3)
    assert l1.action == "fail" and "'e'" in l1.reason and "'l1'" in l1.reason
    model = _run(_index({"m": {"type": "knn_vector", "model_id": "pq-1"}}, {"knn": "true"}), OS2_TO_OS3)
    assert model.action == "fail" and "'m' (model pq-1)" in model.reason


def test_an_absent_index_flag_means_what_the_source_version_meant() -> None:
    before = _run(_index({"v": _vector()}), TargetProfile("elasticsearch", "8.10.4", "opensearch", "3.5.0"))
    es7 = _run(_index({"v": _vector()}), TargetProfile("elasticsearch", "7.17.0", "opensearch", "3.5.0"))
    after = _run(_index({"v": _vector()}), ES8_TO_OS3)
    assert (
        before.body["mappings"]["properties"]["v"]
        == es7.body["mappings"]["properties"]["v"]
        == {
            "type": "knn_vector",
            "dimension": 4,
        }
    )
    assert after.body["mappings"]["properties"]["v"]["method"]["space_type"] == "cosinesimil"


def test_os1_index_level_knn_settings_move_into_the_fields_method() -> None:
    item = _index(
        {"e": {"type": "knn_vector", "dimension": 4}},
        {
            "knn": "true",
            "knn.space_type": "cosinesimil",
            "knn.algo_param.m": "24",
            "knn.algo_param.ef_construction": "256",
        },
    )
    os1 = TargetProfile("opensearch", "1.3.20", "opensearch", "3.5.0")
    got = _run(item, os1)
    assert got.action == "create", got.reason
    assert got.body["settings"] == {"index.number_of_shards": "1", "index.knn": "true"}
    assert got.body["mappings"]["properties"]["e"]["method"] == {
        "name": "hnsw",
        "engine": "lucene",
        "space_type": "cosinesimil",
        "parameters": {"m": 24, "ef_construction": 256},
    }
    to2 = _run(item, TargetProfile("opensearch", "1.3.20", "opensearch", "2.19.6"))
    assert to2.body["mappings"]["properties"]["e"]["method"]["engine"] == "nmslib"
