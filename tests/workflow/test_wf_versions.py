"""The version pairs CI proves end to end: ES 8 → OS 3, ES 7.10 → OS 3, OS 2.19 → OS 3.

Each pair runs `devtools.local.pairs.run_pair`: a data set with routing, nested objects,
updates, deletes and several segments (and, from ES 8, float and bit `dense_vector` fields and
a `flattened` one) goes
through `mactl apply` (snapshot, metadata, backfill, validate); every document on the
target must equal the source's, read by scroll on both sides, and the validation must
pass with its ledger. From ES 8 the vectors arrive as `knn_vector`s and the automatic
k-NN parity check must find the source's top hits on the target; then one vector is
moved on the target and the re-run validation must fail, naming that check. The whole
matrix is `bench/matrix.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from devtools.local.pairs import VECTOR_DIMS, Cluster, PairResult, mactl, run_pair

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _run(source: Any, target: Any, name: str, tname: str, **extra: Any) -> PairResult:
    repo_root = source.repo_folder("workflow", "versions")
    return run_pair(Cluster(name, source.url), Cluster(tname, target.url), repo_root, **extra)


def test_es710_to_os3(es710: Any, os3: Any) -> None:
    r = _run(es710, os3, "es710", "os3")
    assert r.passed, r.detail
    assert r.target_version.startswith("opensearch/3.")
    (report,) = r.audit["reports"]
    (ledger,) = report["ledger"]
    assert ledger["live"] == ledger["written"] == r.documents["docs"] == 230
    assert report["queries"] == []  # no vectors from ES 7.10 OSS


def test_os219_to_os3(os2: Any, os3: Any) -> None:
    r = _run(os2, os3, "os2", "os3")
    assert r.passed, r.detail
    assert r.source_version.startswith("opensearch/2.19") and r.target_version.startswith("opensearch/3.")
    assert r.documents == {"docs": 230}


def test_es8_to_os3_carries_vectors_and_knn_parity_catches_a_moved_vector(es8: Any, os3: Any) -> None:
    seen: dict[str, Any] = {}

    def damage(folder: Path, prefix: str) -> list[str]:
        """Read the vector mappings back from the target, then move the first query vector's
        nearest neighbour (itself) far away, on the target only, and re-run the validation."""
        target = OpenSearch(hosts=[os3.url], timeout=60)
        vec = f"{prefix}-vec"
        body = next(iter(target.indices.get(index=vec).values()))
        seen["mapping"], seen["knn"] = body["mappings"]["properties"], body["settings"]["index"].get("knn")
        first = OpenSearch(hosts=[es8.url], timeout=60).search(
            index=vec, body={"size": 1, "sort": ["_doc"], "query": {"exists": {"field": "emb"}}}
        )["hits"]["hits"][0]
        # a whole new document, not `_update`: OpenSearch 3.5 derives k-NN `_source` from the
        # vector files, and an update reading it back fails there ("Already closed")
        moved = {**first["_source"], "emb_l2": [9.0] * VECTOR_DIMS}
        target.index(index=vec, id=first["_id"], body=moved, refresh=True)
        rerun = mactl(folder, "apply", "-auto-approve", "-replace", "validate.es8.os3")
        seen["rerun"] = rerun.returncode, rerun.stdout + rerun.stderr
        return []

    r = _run(es8, os3, "es8", "os3", after_apply=damage)
    assert r.passed, r.detail
    assert r.source_version.startswith("elasticsearch/8.") and r.target_version.startswith("opensearch/3.")
    assert r.documents == {"docs": 230, "vec": 300}
    assert {"dense_vector-to-knn_vector", "flattened-to-flat_object"} <= set(r.rules)
    (report,) = r.audit["reports"]
    # `emb` holds full-precision values (as a model writes them); OpenSearch 3 reads them back at
    # float32 (derived source), so the sample check compares the vector fields as float32s and says so
    (vec_row,) = [row for row in report["indices"] if row["index"].endswith("-vec")]
    sample = vec_row["checks"]["sample"]
    assert sample["passed"] and sample["matched"] == sample["checked"] == 100, sample  # the default sampleSize
    assert sample["float32Fields"] == ["bits", "emb", "emb_l2"]
    assert "os3-knn-derived-source" in r.rules
    vectors = {q["field"]: q for q in report["queries"] if q.get("kind") == "vector"}
    assert set(vectors) == {"emb", "emb_l2", "bits"}
    for q in vectors.values():
        assert q["passed"] and len(q["overlaps"]) == 3 and min(q["overlaps"]) >= q["minOverlap"]
        assert all(len(top) == 10 for top in q["sourceTop"]) and q["sourceTop"][0][0] == q["targetTop"][0][0]
    assert vectors["emb_l2"]["overlaps"] == vectors["bits"]["overlaps"] == [1.0, 1.0, 1.0]
    props = seen["mapping"]
    assert seen["knn"] == "true"
    # ES 8.19's default for an indexed float vector is int8_hnsw: Lucene's scalar quantizer on the target
    assert props["emb"] == {
        "type": "knn_vector",
        "dimension": VECTOR_DIMS,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": "cosinesimil",
            "parameters": {"m": 16, "ef_construction": 100, "encoder": {"name": "sq", "parameters": {}}},
        },
    }
    assert props["attrs"] == {"type": "flat_object"}
    assert props["bits"]["data_type"] == "BINARY" and props["bits"]["method"]["space_type"] == "hamming"
    assert props["emb_l2"]["method"] == {
        "name": "hnsw",
        "engine": "lucene",
        "space_type": "l2",
        "parameters": {"m": 16, "ef_construction": 100},
    }
    assert vectors["emb"]["quantized"] and vectors["emb"]["minOverlap"] == 0.9
    assert not vectors["emb_l2"]["quantized"] and vectors["emb_l2"]["minOverlap"] == 1.0
    code, out = seen["rerun"]
    assert code != 0 and "Traceback" not in out
    assert "query 'k-NN emb_l2'" in out and "worst overlap 90%" in out
    assert "query 'k-NN emb'" not in out and "k-NN bits" not in out  # the other fields still agree
