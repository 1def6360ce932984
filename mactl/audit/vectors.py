"""Vector query parity: a k-NN search on the target returns the source's top hits.

The source is the source of truth: the query vectors are its own documents' vectors
(or the ones a `queries` entry gives), and the expected top hits are what the source
answers for them — Elasticsearch 8's `knn` search on an indexed `dense_vector`, an
exact `script_score` on one that has no graph (ES 7.x, `index: false`), the k-NN
plugin's `knn` query on an OpenSearch source. The target answers the k-NN plugin's
`knn` query, asked to look as far as the source did (`ef_search` = `numCandidates`).
The check passes when, for every query vector, the target returns at least
`minOverlap` of the source's top `k` ids: all of them for a float graph, 90% for a
scalar-quantized one (each side quantizes per segment, so neighbours at the edge of the
top k may swap; found on ES 8.19 `int8_hnsw` → OpenSearch 3.5 Lucene `sq`).

Every `knn_vector` field the target can search (a graph on an `index.knn` index) gets
such a check without configuration; a `queries` entry with `vector:` for the same index
and field replaces the automatic one (other vectors, `k`, a lower `minOverlap`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from mactl.schema.validate import Query, VectorSearch

# Space type of the target field → the ES 7 script that ranks the same way, exactly.
_SCRIPTS = {
    "cosinesimil": "cosineSimilarity(params.v, params.f) + 1.0",
    "l2": "1 / (1 + l2norm(params.v, params.f))",
    "innerproduct": "double d = dotProduct(params.v, params.f); return d < 0 ? 1 / (1 - d) : d + 1;",
}
_ES_SIMILARITY_SPACE = {
    "cosine": "cosinesimil",
    "l2_norm": "l2",
    "dot_product": "innerproduct",
    "max_inner_product": "innerproduct",
}


def _fields(props: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    """(dotted path, definition) of every field outside `nested` ones (k-NN on nested needs a nested query)."""
    for name, spec in props.items():
        if not isinstance(spec, dict):
            continue
        path = f"{prefix}{name}"
        if spec.get("type") == "nested":
            continue
        yield path, spec
        if isinstance(spec.get("properties"), dict):
            yield from _fields(spec["properties"], f"{path}.")


def _mapping_of(client: OpenSearch, index: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`mappings`, flat settings) of one index; empty when it cannot be read."""
    try:
        got = client.indices.get(index=index, params={"flat_settings": "true"})
    except TransportError:
        return {}, {}
    body: dict[str, Any] = next(iter(got.values()), {}) if got else {}
    return dict(body.get("mappings") or {}), dict(body.get("settings") or {})


def searchable_vector_fields(client: OpenSearch, index: str) -> dict[str, dict[str, Any]]:
    """The target index's `knn_vector` fields a k-NN query can search: path → definition."""
    mappings, settings = _mapping_of(client, index)
    if str(settings.get("index.knn", "false")).lower() != "true":
        return {}
    return {
        path: spec
        for path, spec in _fields(mappings.get("properties") or {})
        if spec.get("type") == "knn_vector" and not spec.get("model_id")
    }


#: The automatic checks' `minOverlap`: a float graph must return the source's top k; a
#: scalar-quantized one (ES `int8_hnsw` → Lucene `sq`) quantizes per segment on each side,
#: so a neighbour at the edge of the top k may swap places with the next one.
EXACT_OVERLAP = 1.0
QUANTIZED_OVERLAP = 0.9


def is_quantized(spec: Mapping[str, Any]) -> bool:
    params = (spec.get("method") or {}).get("parameters") or {}
    return bool(params.get("encoder")) or "compression_level" in spec or spec.get("mode") == "on_disk"


def automatic_queries(target: OpenSearch, indices: Iterable[str], given: Iterable[Query]) -> list[Query]:
    """One vector parity query per searchable target vector field the `queries` do not cover."""
    covered = {(q.targetIndex or q.index, q.vector.targetField or q.vector.field) for q in given if q.vector}
    out: list[Query] = []
    for index in sorted(set(indices)):
        for path, spec in sorted(searchable_vector_fields(target, index).items()):
            if (index, path) not in covered:
                overlap = QUANTIZED_OVERLAP if is_quantized(spec) else EXACT_OVERLAP
                out.append(Query(index=index, name=f"k-NN {path}", vector=VectorSearch(field=path, minOverlap=overlap)))
    return out


def _dig(source: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` of a `_source`, whether written as objects or as a dotted key."""
    if path in source:
        return source[path]
    head, _, rest = path.partition(".")
    value = source.get(head)
    return _dig(value, rest) if rest and isinstance(value, Mapping) else None


def _query_vectors(source: OpenSearch, index: str, vs: VectorSearch) -> list[list[float | int]]:
    if vs.vectors:
        return [list(v) for v in vs.vectors]
    resp = source.search(
        index=index,
        body={
            "size": vs.fromDocuments,
            "query": {"exists": {"field": vs.field}},
            "_source": [vs.field],
            "sort": ["_doc"],
        },
    )
    vectors = [_dig(h.get("_source") or {}, vs.field) for h in resp["hits"]["hits"]]
    # as stored: byte and bit vectors are integers, which both sides want as integers
    return [list(v) for v in vectors if isinstance(v, list) and v]


def _ids(resp: Mapping[str, Any]) -> list[str]:
    return [str(h["_id"]) for h in resp["hits"]["hits"]]


def _source_top(source: OpenSearch, index: str, vs: VectorSearch, vector: list[float | int], space: str) -> list[str]:
    """The source's top `k` ids for `vector`, asked the way the source's field can answer."""
    mappings, _ = _mapping_of(source, index)
    spec = dict(_fields(mappings.get("properties") or {})).get(vs.field, {})
    k = vs.k
    body: dict[str, Any]
    if spec.get("type") == "knn_vector":
        body = {"size": k, "_source": False, "query": {"knn": {vs.field: {"vector": vector, "k": k}}}}
        return _ids(source.search(index=index, body=body))
    indexed = str(spec.get("index", "false")).lower() == "true" or "similarity" in spec
    if indexed:
        body = {
            "size": k,
            "_source": False,
            "knn": {"field": vs.field, "query_vector": vector, "k": k, "num_candidates": max(vs.numCandidates, k)},
        }
        return _ids(source.search(index=index, body=body))
    space = _ES_SIMILARITY_SPACE.get(str(spec.get("similarity")), space)
    body = {
        "size": k,
        "_source": False,
        "query": {
            "script_score": {
                "query": {"exists": {"field": vs.field}},
                "script": {"source": _SCRIPTS[space], "params": {"v": vector, "f": vs.field}},
            }
        },
    }
    return _ids(source.search(index=index, body=body))


def _target_top(target: OpenSearch, index: str, field: str, vs: VectorSearch, vector: list[float | int]) -> list[str]:
    knn: dict[str, Any] = {"vector": vector, "k": vs.k, "method_parameters": {"ef_search": max(vs.numCandidates, vs.k)}}
    body = {"size": vs.k, "_source": False, "query": {"knn": {field: knn}}}
    try:
        return _ids(target.search(index=index, body=body))
    except TransportError as exc:
        if "method_parameters" not in str(exc.error) and "method_parameters" not in str(exc.info):
            raise
        del knn["method_parameters"]  # k-NN before 2.16 takes no per-query ef_search
        return _ids(target.search(index=index, body=body))


def check_vector_query(q: Query, source: OpenSearch, target: OpenSearch) -> dict[str, Any]:
    """Per query vector, the share of the source's top k the target also returns."""
    assert q.vector is not None
    vs = q.vector
    tindex = q.targetIndex or q.index
    tfield = vs.targetField or vs.field
    result: dict[str, Any] = {
        "kind": "vector",
        "name": q.name or f"k-NN {vs.field}",
        "index": q.index,
        "targetIndex": tindex,
        "field": vs.field,
        "k": vs.k,
        "minOverlap": vs.minOverlap,
        "quantized": False,
        "sourceHits": None,
        "targetHits": None,
        "sourceTop": [],
        "targetTop": [],
    }
    target_spec = searchable_vector_fields(target, tindex).get(tfield)
    if target_spec is None:
        result.update(passed=False, detail=f"the target index has no searchable knn_vector field '{tfield}'")
        return result
    space = str((target_spec.get("method") or {}).get("space_type") or target_spec.get("space_type") or "l2")
    result["quantized"] = is_quantized(target_spec)
    try:
        source.indices.refresh(index=q.index)
        target.indices.refresh(index=tindex)
        vectors = _query_vectors(source, q.index, vs)
        if not vectors:
            result.update(passed=False, detail=f"no query vector: no source document has '{vs.field}'")
            return result
        overlaps: list[float] = []
        for vector in vectors:
            s_ids = _source_top(source, q.index, vs, vector, space)
            t_ids = _target_top(target, tindex, tfield, vs, vector)
            overlaps.append(len(set(s_ids) & set(t_ids)) / len(s_ids) if s_ids else float(not t_ids))
            result["sourceTop"].append(s_ids)
            result["targetTop"].append(t_ids)
    except TransportError as exc:
        result.update(passed=False, detail=f"k-NN query failed: {exc.status_code}: {exc.error}")
        return result
    worst = min(overlaps)
    result["sourceHits"] = sum(len(ids) for ids in result["sourceTop"])
    result["targetHits"] = sum(len(ids) for ids in result["targetTop"])
    result["overlaps"] = overlaps
    result["sameOrder"] = result["sourceTop"] == result["targetTop"]
    result["passed"] = worst >= vs.minOverlap
    result["detail"] = (
        f"{len(vectors)} query vector(s), top {vs.k}: worst overlap {worst:.0%} "
        f"(at least {vs.minOverlap:.0%} required){', same order' if result['sameOrder'] else ''}"
    )
    return result
