"""Validation's mappings/settings check on the real targets: no false differences, real ones named.

Every index definition of the real-world corpus (`../shared/realworld-corpus/`, read at test
time), and one index per template (its components merged in, as an index the template
shaped would hold), is put through the metadata rules for an Elasticsearch 7.10 and an 8.19
source, created on OpenSearch 2.19 and 3.5 (k-NN) exactly as the metadata stage creates it,
and checked with `check_definition` against the recorded definition: each must pass. So must
the version matrix's mappings and the ES 8 / OpenSearch 2 constructs, read back from the real
Elasticsearch 8 where it can hold them, and an index of the field types whose defaults each
target fills in (`FIELD_DEFAULTS` in `mactl/metadata/written_back.py`). Then definitions that really differ from the target,
and changes made on the target afterwards, must fail naming the field or setting.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from devtools.local.pairs import DOCS_BODY, VEC_BODY
from mactl.audit.checks import check_definition
from mactl.metadata import target as tgt
from mactl.metadata.evaluate import _evaluate_one, target_components
from mactl.metadata.items import Item, index_body
from mactl.metadata.user_transforms import UserTransforms
from mactl.metadata.version_transforms import TargetProfile

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "realworld-corpus"
SOURCES = ("7.10.2", "8.19.21")
# What the rules pass and the targets still refuse: the mapper-size plugin's `_size`.
TARGET_REFUSES = {"rw-eql-endgame": "_size"}


@pytest.fixture
def prefix(os2: Any, os3: Any, es8: Any) -> Iterator[str]:
    p = f"mapcheck-{uuid.uuid4().hex[:8]}-"
    yield p
    for cluster in (os2, os3, es8):
        OpenSearch(cluster.url, timeout=60).indices.delete(index=f"{p}*", params={"ignore_unavailable": "true"})


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _corpus_definitions(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """(corpus name, index body): each index entry, and what each template gives an index."""
    manifest = CORPUS / "MANIFEST.json"
    if not manifest.is_file():
        pytest.fail(f"the real-world corpus is missing: {manifest} (it is checked out beside the repository)")
    entries = json.loads(manifest.read_text())["entries"]
    bodies = {
        e["name"]: json.loads(
            json.dumps(json.loads((CORPUS / f"{e['name']}.json").read_text())["body"]).replace('"rw-', f'"{prefix}')
        )
        for e in entries
    }
    out = []
    for e in entries:
        body = bodies[e["name"]]
        if e["kind"] in ("index", "legacy_template"):
            parts = body
        elif e["kind"] == "index_template":
            parts = {}
            for component in body.get("composed_of") or []:
                _merge(parts, bodies.get(component.replace(prefix, "rw-", 1), {}).get("template") or {})
            _merge(parts, body.get("template") or {})
        else:
            continue
        out.append((e["name"], index_body(parts.get("settings"), parts.get("mappings"), parts.get("aliases"))))
    return out


def _create_and_check(client: OpenSearch, items: list[tuple[str, Item]], profile: TargetProfile) -> dict[str, Any]:
    """Evaluate each item for `profile`, create it as the metadata stage does, run the check."""
    results: dict[str, Any] = {}
    todo = []
    for label, item in items:
        ev = _evaluate_one(item, profile, UserTransforms([]))
        if ev.action != "create":
            results[label] = ("not migrated", ev.reason)
            continue
        todo.append((label, ev))

    def one(pair: tuple[str, Any]) -> tuple[str, Any]:
        label, ev = pair
        try:
            tgt.create(client, "index", ev.name, ev.body)
        except tgt.CreateFailed as exc:
            return label, ("refused", exc.reason)
        return label, ("checked", check_definition({"index": ev.name, "definition": ev.body}, client))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results.update(pool.map(one, todo))
    return results


@pytest.mark.cluster
@pytest.mark.parametrize("target_name", ["os2", "os3"])
def test_the_corpus_passes_the_check_on_each_target(
    target_name: str, request: pytest.FixtureRequest, prefix: str
) -> None:
    client = OpenSearch(request.getfixturevalue(target_name).url, timeout=120, maxsize=4)
    version = client.info()["version"]["number"]
    components = target_components(client)
    checked: dict[str, int] = {}
    for source_version in SOURCES:
        profile = TargetProfile("elasticsearch", source_version, "opensearch", version, components)
        named = f"{prefix}{source_version[0]}-"  # one name (and write alias) per source version
        items = [(name, Item("index", f"{named}{name[3:]}".lower(), body)) for name, body in _corpus_definitions(named)]
        results = _create_and_check(client, items, profile)
        failed = {n: r["detail"] for n, (what, r) in results.items() if what == "checked" and not r["passed"]}
        assert not failed, f"false differences from ES {source_version} on {version}: {failed}"
        refused = {n: r for n, (what, r) in results.items() if what == "refused"}
        assert set(refused) == set(TARGET_REFUSES), refused
        assert all(TARGET_REFUSES[n] in reason for n, reason in refused.items()), refused
        checked[source_version] = sum(1 for what, _ in results.values() if what == "checked")
    # OpenSearch 2.19 here has no k-NN, geo_shape or percolator: their entries are not migrated there
    least = 25 if target_name == "os2" else 31
    assert all(n >= least for n in checked.values()), checked


# The version matrix's mappings (devtools/local/pairs.py) and the ES 8 constructs, created on
# Elasticsearch 8 and read back as a snapshot of it would hold them.
ES8_BODIES: dict[str, dict[str, Any]] = {
    "docs": DOCS_BODY,
    "vec": VEC_BODY,
    "tsdb": {
        "settings": {"index": {"mode": "time_series", "routing_path": ["host"], "number_of_replicas": 0}},
        "mappings": {
            "subobjects": False,
            "runtime": {"day": {"type": "keyword"}},
            "properties": {
                "@timestamp": {"type": "date"},
                "host": {"type": "keyword", "time_series_dimension": True},
                "cpu": {"type": "double", "time_series_metric": "gauge"},
                "b": {"type": "dense_vector", "dims": 8, "element_type": "byte", "similarity": "dot_product"},
                "u": {"type": "dense_vector", "dims": 4, "index": False},
                "tokens": {"type": "sparse_vector"},
            },
        },
    },
}
_NMSLIB = {"name": "hnsw", "engine": "nmslib", "space_type": "innerproduct", "parameters": {"m": 16}}
OS2_ITEMS = {
    "nmslib": {
        "settings": {"index.knn": "true"},
        "mappings": {"properties": {"e": {"type": "knn_vector", "dimension": 4, "method": _NMSLIB}}},
    },
    "os1-settings": {
        "settings": {"index.knn": "true", "index.knn.space_type": "cosinesimil", "index.knn.algo_param.m": "24"},
        "mappings": {"properties": {"e": {"type": "knn_vector", "dimension": 4}}},
    },
}


@pytest.mark.cluster
def test_the_matrix_and_es8_constructs_pass_the_check_on_opensearch_3(es8: Any, os3: Any, prefix: str) -> None:
    source = OpenSearch(es8.url, timeout=60)
    es8_items = []
    for name, body in ES8_BODIES.items():
        source.indices.create(index=f"{prefix}{name}", body=body)
        got = source.indices.get(index=f"{prefix}{name}", params={"flat_settings": "true"})[f"{prefix}{name}"]
        es8_items.append(
            (name, Item("index", f"{prefix}{name}", {k: got[k] for k in ("settings", "mappings", "aliases")}))
        )
    client = OpenSearch(os3.url, timeout=120, maxsize=4)
    version, components = client.info()["version"]["number"], target_components(client)
    results = _create_and_check(
        client, es8_items, TargetProfile("elasticsearch", "8.19.21", "opensearch", version, components)
    )
    os2_items = [(n, Item("index", f"{prefix}{n}", {**b, "aliases": {}})) for n, b in OS2_ITEMS.items()]
    results.update(
        _create_and_check(client, os2_items, TargetProfile("opensearch", "2.19.6", "opensearch", version, components))
    )
    assert {n: what for n, (what, _) in results.items()} == dict.fromkeys([*ES8_BODIES, *OS2_ITEMS], "checked"), results
    assert all(r["passed"] for _, r in results.values()), {n: r["detail"] for n, (_, r) in results.items()}


# Field types whose defaults the targets write back (found by probing both targets); the
# k-NN, join and version ones only where the target has them.
FILLED_IN: dict[str, dict[str, Any]] = {
    "done": {"type": "completion"},
    "sayt": {"type": "search_as_you_type"},
    "tags": {"type": "keyword", "copy_to": ["all"], "doc_values": "false"},
    "all": {"type": "text", "norms": "false", "position_increment_gap": "100"},
    "n": {"type": "long", "null_value": "0", "ignore_malformed": "true"},
    "empty": {"properties": {}},
    "off": {"type": "object", "enabled": "false"},
    "closed": {"dynamic": False, "properties": {"y": {"type": "long"}}},  # reads back "false"
    "wc": {"type": "wildcard"},
}
FILLED_IN_OS3: dict[str, dict[str, Any]] = {
    "rel": {"type": "join", "relations": {"q": "a"}},
    "ver": {"type": "version"},
    "k_bytes": {
        "type": "knn_vector",
        "dimension": 4,
        "data_type": "byte",
        "method": {"name": "hnsw", "engine": "lucene"},
    },
    "k_float": {
        "type": "knn_vector",
        "dimension": 4,
        "data_type": "float",
        "method": {"name": "hnsw", "engine": "lucene"},
    },
    "k_field_space": {
        "type": "knn_vector",
        "dimension": 4,
        "space_type": "cosinesimil",
        "method": {"name": "hnsw", "engine": "lucene"},
    },
    "k_sq": {
        "type": "knn_vector",
        "dimension": 4,
        "method": {"name": "hnsw", "engine": "lucene", "parameters": {"encoder": {"name": "sq"}}},
    },
    "k_engine": {"type": "knn_vector", "dimension": 4, "method": {"name": "hnsw"}},
}


@pytest.mark.cluster
@pytest.mark.parametrize("target_name", ["os2", "os3"])
def test_defaults_each_target_fills_in_pass_the_check(
    target_name: str, request: pytest.FixtureRequest, prefix: str
) -> None:
    client = OpenSearch(request.getfixturevalue(target_name).url, timeout=60)
    props = {**FILLED_IN, **(FILLED_IN_OS3 if target_name == "os3" else {})}
    root = {
        "_source": {"enabled": True, "excludes": ["secret"]},
        "date_detection": "false",
        "dynamic_templates": [{"any": {"match": "z_*", "match_mapping_type": "*", "mapping": {"type": "keyword"}}}],
        "properties": props,
    }
    settings = {"index": {"number_of_shards": 1, **({"knn": True} if target_name == "os3" else {})}}
    body = index_body(settings, root, {"w": {"routing": "1", "is_write_index": True}})
    tgt.create(client, "index", f"{prefix}filled", copy.deepcopy(body))
    result = check_definition({"index": f"{prefix}filled", "definition": body}, client)
    assert result["passed"], result["detail"]


# One definition with what the targets fill in themselves, and changes that must show.
BASE = {
    "settings": {"index.number_of_shards": "1", "index.number_of_replicas": "0", "index.knn": "true"},
    "mappings": {
        "_source": {"enabled": True},
        "properties": {
            "title": {"type": "text", "analyzer": "english", "index_prefixes": {}, "copy_to": "all"},
            "all": {"type": "text"},
            "tag": {"type": "keyword", "ignore_above": "256"},
            "price": {"type": "scaled_float", "scaling_factor": 100},
            "wc": {"type": "wildcard"},
            "meta": {"type": "object", "properties": {"at": {"type": "date", "format": "yyyy-MM-dd"}}},
            "attrs": {"type": "flat_object"},
            "emb": {"type": "knn_vector", "dimension": 4, "method": {"name": "hnsw", "engine": "lucene"}},
        },
    },
    "aliases": {"by-route": {"routing": "r1"}},
}


def _changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


@pytest.mark.cluster
def test_real_differences_fail_naming_the_field(os3: Any, prefix: str) -> None:
    client = OpenSearch(os3.url, timeout=60)
    index = f"{prefix}base"
    tgt.create(client, "index", index, copy.deepcopy(BASE))
    assert check_definition({"index": index, "definition": BASE}, client)["passed"]
    props = ("mappings", "properties")
    differing = {
        "['tag']['type']": _changed((*props, "tag", "type"), "text"),
        "['emb']['dimension']": _changed((*props, "emb", "dimension"), 8),
        "['emb']['method']['space_type']": _changed((*props, "emb", "method", "space_type"), "cosinesimil"),
        "['title']['analyzer']": _changed((*props, "title", "analyzer"), "standard"),
        "['wc']['doc_values']": _changed((*props, "wc", "doc_values"), False),  # explicit, not the 3.5 default
        "['price']['scaling_factor']": _changed((*props, "price", "scaling_factor"), 10),
        "['gone']": _changed((*props, "gone"), {"type": "keyword"}),  # a field the target lacks
        "['index_prefixes']": _changed((*props, "title", "index_prefixes"), None),
        "index.number_of_replicas": _changed(("settings", "index.number_of_replicas"), "1"),
        "['by-route']": _changed(("aliases", "by-route"), {"routing": "r2"}),
    }
    for where, definition in differing.items():
        result = check_definition({"index": index, "definition": definition}, client)
        assert not result["passed"] and where in result["detail"], (where, result["detail"])
    # changed on the target after metadata created it
    client.indices.put_mapping(index=index, body={"properties": {"tag": {"type": "keyword", "ignore_above": 100}}})
    client.indices.put_settings(index=index, body={"index.number_of_replicas": 1})
    result = check_definition({"index": index, "definition": BASE}, client)
    assert not result["passed"]
    assert "['tag']['ignore_above']" in result["detail"] and "index.number_of_replicas" in result["detail"]


def test_spellings_that_differ_in_meaning_stay_different() -> None:
    """No cluster: what the rules must not merge (each pair would hide a real difference)."""
    from mactl.metadata.written_back import canonical_aliases, comparable_mappings

    def same(desired: dict[str, Any], actual: dict[str, Any]) -> bool:
        left, right = comparable_mappings({"properties": {"f": desired}}, {"properties": {"f": actual}})
        return bool(left == right)

    assert same({"type": "keyword", "ignore_above": "256"}, {"type": "keyword", "ignore_above": 256})
    assert not same({"type": "keyword", "null_value": "01"}, {"type": "keyword", "null_value": "1"})
    assert same({"type": "wildcard"}, {"type": "wildcard", "doc_values": False})  # the 2.19 default
    assert not same({"type": "wildcard", "doc_values": True}, {"type": "wildcard", "doc_values": False})
    knn = {"type": "knn_vector", "dimension": 4, "method": {"name": "hnsw"}}
    assert same(knn, {**knn, "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2", "parameters": {}}})
    explicit = {**knn, "method": {"name": "hnsw", "engine": "lucene"}}
    assert not same(explicit, {**knn, "method": {"name": "hnsw", "engine": "faiss"}})
    assert not same(
        {**knn, "method": {"name": "hnsw", "space_type": "cosinesimil"}}, {**knn, "method": {"name": "hnsw"}}
    )
    assert not same({"type": "object", "properties": {"a": {"type": "long"}}}, {"type": "object"})
    assert not same({"type": "keyword"}, {"type": "text"})
    assert canonical_aliases({"a": {"routing": "1"}}) == {"a": {"index_routing": "1", "search_routing": "1"}}
    assert canonical_aliases({"a": {"is_write_index": "true"}}) != canonical_aliases({"a": {"is_write_index": True}})
