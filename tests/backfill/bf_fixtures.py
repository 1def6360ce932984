"""Shared helpers and data for the backfill tests: a 6-shard ES 7.10.2 index with history, snapshotted.

The source index `bf-<run>-src` is built once per session with updates (full re-index and
partial `_update`), deletes and custom routing over several refreshes (so several
segments with soft-deleted documents), then snapshotted into an fs repository under
`$MACTL_TEST_REPO_DIR/backfill`. Tests read that snapshot and compare what lands on the
OpenSearch 2.x target with the live source, document by document.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers

# Every name carries this session's id, so two sessions (a developer's and CI) never touch
# each other's indices, and cleanup deletes only what this session made.
RUN = uuid.uuid4().hex[:6]
SOURCE_INDEX = f"bf-{RUN}-src"
REPO_NAME = f"bf-{RUN}-repo"
SNAPSHOT = f"bf-{RUN}-snap"
N_DOCS = 3000


def name(suffix: str) -> str:
    """An index name of this session: `bf-<run>-<suffix>`."""
    return f"bf-{RUN}-{suffix}"


def stage_address(tag: str = "") -> str:
    """A backfill stage address of this session (its working-state index carries the run id)."""
    return f"backfill.bf.snap.t.m{RUN}{tag or uuid.uuid4().hex[:4]}.b0"


@dataclass(frozen=True)
class SourceSnapshot:
    es_url: str
    os_url: str
    repo_dir: Path
    repo_name: str
    snapshot: str
    index: str
    live_ids: frozenset[str]


def scan_docs(client: OpenSearch, index: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """Every document of `index`: id -> (routing, _source)."""
    client.indices.refresh(index=index)
    out: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for hit in helpers.scan(client, index=index, query={"query": {"match_all": {}}}, size=1000):
        out[hit["_id"]] = (hit.get("_routing"), hit["_source"])
    return out


def _build_source(es: OpenSearch) -> None:
    es.indices.delete(index=SOURCE_INDEX, ignore=[404])
    es.indices.create(
        index=SOURCE_INDEX,
        body={
            "settings": {"number_of_shards": 6, "number_of_replicas": 0, "refresh_interval": -1},
            "mappings": {
                "properties": {
                    "title": {"type": "text"},
                    "n": {"type": "long"},
                    "tag": {"type": "keyword"},
                    "nested": {"properties": {"a": {"type": "keyword"}, "b": {"type": "long"}}},
                }
            },
        },
    )
    rnd = random.Random(7)

    def doc(i: int, version: int) -> dict[str, Any]:
        return {
            "title": f"document {i} version {version} " + "x" * rnd.randint(0, 200),
            "n": i * 10 + version,
            "tag": f"t{i % 13}",
            "nested": {"a": f"v{version}", "b": i},
            "text": 'multi\nline "quoted" ünïcödé',
        }

    def routing(i: int) -> str | None:
        return f"r{i % 5}" if i % 3 == 0 else None

    def index_ops(ids: range, version: int) -> Iterator[dict[str, Any]]:
        for i in ids:
            op: dict[str, Any] = {"_index": SOURCE_INDEX, "_id": f"doc-{i}", "_source": doc(i, version)}
            if routing(i):
                op["_routing"] = routing(i)
            yield op

    helpers.bulk(es, index_ops(range(N_DOCS), 1), chunk_size=500)
    es.indices.refresh(index=SOURCE_INDEX)
    # full re-index of a third, partial updates of some, deletes of some, in separate segments
    helpers.bulk(es, index_ops(range(0, N_DOCS, 3), 2), chunk_size=500)
    es.indices.refresh(index=SOURCE_INDEX)
    updates = [
        {
            "_op_type": "update",
            "_index": SOURCE_INDEX,
            "_id": f"doc-{i}",
            "doc": {"tag": "updated", "extra": i},
            **({"_routing": routing(i)} if routing(i) else {}),
        }
        for i in range(1, N_DOCS, 7)
    ]
    helpers.bulk(es, updates, chunk_size=500)
    es.indices.refresh(index=SOURCE_INDEX)
    deletes = [
        {
            "_op_type": "delete",
            "_index": SOURCE_INDEX,
            "_id": f"doc-{i}",
            **({"_routing": routing(i)} if routing(i) else {}),
        }
        for i in range(2, N_DOCS, 11)
    ]
    helpers.bulk(es, deletes, chunk_size=500)
    es.indices.refresh(index=SOURCE_INDEX)
    es.indices.flush(index=SOURCE_INDEX)
