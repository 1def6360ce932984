"""Smoke tests for ES 8.x and OpenSearch 3.x (`scripts/clusters up es8 os3`): the pinned
versions run with security off, both answer a vector query with the same top hits (ES 8's
`knn` search, OpenSearch 3's k-NN plugin with its lucene engine), and OpenSearch 3 runs
painless. (Reindex from remote cannot reach the ES 8 integ-test zip: it asks `GET /` for the
remote's version, which that build answers with 405.)"""

from __future__ import annotations

import uuid

import pytest
from opensearchpy import OpenSearch

from devtools.local.distributions import version_for

pytestmark = pytest.mark.cluster


def _client(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url], timeout=120)


def test_es8_and_os3_run_the_pinned_versions_and_agree_on_vector_top_hits(es8, os3) -> None:
    source, target = _client(es8.url), _client(os3.url)
    assert (es8.version, os3.version) == (version_for("es8"), version_for("os3"))
    assert source.cluster.health()["status"] in ("green", "yellow")
    plugins = {row["component"] for row in target.cat.plugins(format="json")}
    assert "opensearch-knn" in plugins

    index = f"smoke-new-{uuid.uuid4().hex[:10]}"
    vectors = {"near": [1.0, 2.0, 3.0], "far": [9.0, 9.0, 9.0], "mid": [4.0, 4.0, 4.0]}
    try:
        source.indices.create(
            index=index,
            body={"mappings": {"properties": {"v": {"type": "dense_vector", "dims": 3, "similarity": "l2_norm"}}}},
        )
        for doc_id, vector in vectors.items():
            source.index(index=index, id=doc_id, body={"v": vector, "n": len(doc_id)})
        source.indices.refresh(index=index)

        target.indices.create(
            index=index,
            body={
                "settings": {"index.knn": True},
                "mappings": {
                    "properties": {
                        "v": {
                            "type": "knn_vector",
                            "dimension": 3,
                            "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"},
                        }
                    }
                },
            },
        )
        for doc_id, vector in vectors.items():
            target.index(index=index, id=doc_id, body={"v": vector, "n": len(doc_id)})
        target.indices.refresh(index=index)
        es_hits = source.search(
            index=index, body={"knn": {"field": "v", "query_vector": [1.0, 2.0, 2.9], "k": 2, "num_candidates": 10}}
        )["hits"]["hits"]
        assert [h["_id"] for h in es_hits] == ["near", "mid"]
        updated = target.update_by_query(
            index=index,
            body={"script": {"lang": "painless", "source": "ctx._source.n = ctx._source.n * 10"}},
            params={"refresh": "true"},
        )
        assert updated["updated"] == 3
        hits = target.search(
            index=index, body={"size": 2, "query": {"knn": {"v": {"vector": [1.0, 2.0, 2.9], "k": 2}}}}
        )["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["near", "mid"]
        assert hits[0]["_source"] == {"v": vectors["near"], "n": 40}
    finally:
        source.indices.delete(index=index, ignore_unavailable=True)
        target.indices.delete(index=index, ignore_unavailable=True)
