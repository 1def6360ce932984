"""The sample check on an OpenSearch 3 k-NN index: vectors the target rebuilds are compared as
float32s, and nothing else is relaxed.

OpenSearch 3 reads `knn_vector` values back from its float32 vector index
(`index.knn.derived_source.enabled`), so a full-precision vector never equals the snapshot's
`_source` byte for byte; an ES 8 → OS 3 migration of real embeddings failed validation with
0/50 sampled documents matching before this. On the real OpenSearch 3.5 with k-NN.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from opensearchpy import OpenSearch

from mactl.audit.derived_vectors import derived_vector_paths, same_source


def test_only_the_named_fields_are_compared_as_float32() -> None:
    fields = frozenset({"v", "obj.w"})
    doc = {"v": [0.39668047465078016, -1e-9], "obj": [{"w": [1, 2.5]}], "n": 0.1}
    assert same_source(doc, {"v": [0.39668047, -1e-9], "obj": [{"w": [1.0, 2.5]}], "n": 0.1}, fields)
    assert not same_source(doc, {**doc, "v": [0.3966806, -1e-9]}, fields)  # four float32 steps off
    assert not same_source(doc, {**doc, "v": [0.39668047]}, fields)  # an element less
    assert not same_source(doc, {**doc, "n": 0.10000000149011612}, fields)  # not a vector field: exact
    assert not same_source(doc, {**doc, "extra": 1}, fields)
    assert not same_source(doc, {"v": [0.39668047, -1e-9], "obj": [{"w": [1.0, 2.5]}], "n": 0.1}, frozenset())


@pytest.mark.cluster
def test_a_derived_vector_matches_as_float32_and_a_moved_one_does_not(os3: Any) -> None:
    client = OpenSearch(hosts=[os3.url], timeout=60)
    index = f"dv-{uuid.uuid4().hex[:8]}"
    knn = {"type": "knn_vector", "dimension": 4, "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}}
    body = {
        "settings": {"index.knn": True, "number_of_replicas": 0},
        "mappings": {"properties": {"v": knn, "obj": {"properties": {"w": knn}}, "n": {"type": "float"}}},
    }
    rng = random.Random(11)
    docs = {
        str(i): {"v": [rng.uniform(-1, 1) for _ in range(4)], "obj": {"w": [rng.random() for _ in range(4)]}, "n": i}
        for i in range(20)
    }
    client.indices.create(index=index, body=body)
    try:
        for i, doc in docs.items():
            client.index(index=index, id=i, body=doc)
        client.indices.refresh(index=index)
        assert derived_vector_paths(client, index) == {"v", "obj.w"}
        got = {i: client.get(index=index, id=i)["_source"] for i in docs}
        assert all(got[i] != docs[i] for i in docs)  # the target really rebuilt them: not equal as JSON
        assert all(same_source(docs[i], got[i], frozenset({"v", "obj.w"})) for i in docs)
        moved = {**docs["0"], "v": [x + 1e-4 for x in docs["0"]["v"]]}
        client.index(index=index, id="0", body=moved, refresh=True)
        assert not same_source(docs["0"], client.get(index=index, id="0")["_source"], frozenset({"v", "obj.w"}))
    finally:
        client.indices.delete(index=index, ignore=[404])

    kept = f"{index}-kept"
    client.indices.create(
        index=kept, body={**body, "settings": {**body["settings"], "index.knn.derived_source.enabled": False}}
    )
    try:
        client.index(index=kept, id="1", body=docs["1"], refresh=True)
        assert derived_vector_paths(client, kept) == frozenset()
        assert client.get(index=kept, id="1")["_source"] == docs["1"]  # stored as written: compared exactly
    finally:
        client.indices.delete(index=kept, ignore=[404])
