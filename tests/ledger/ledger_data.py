"""Data of the ledger tests: three ES 7.10.2 indices that each break a naive document count.

- `nested`: documents with 0-3 `nested` children over several segments, with full
  re-index updates (which change the number of children), deletes and custom routing:
  Lucene's live count (children included) is far above the top-level count users see.
- `nosrc`: `_source` disabled, so the snapshot holds no document bodies.
- `conflict`: a keyword field holding strings; the tests map it as `long` on the target
  first, so every document is refused there (dead-lettered).

All three go into one snapshot in an fs repository under the shared `path.repo`.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers

RUN = uuid.uuid4().hex[:6]
PREFIX = f"lg-{RUN}"
NESTED = f"{PREFIX}-nested"
NOSRC = f"{PREFIX}-nosrc"
CONFLICT = f"{PREFIX}-conflict"
REPO = f"{PREFIX}-repo"
SNAPSHOT = f"{PREFIX}-snap"
N_NESTED = 600
N_NOSRC = 40
N_CONFLICT = 30


@dataclass(frozen=True)
class LedgerSource:
    es_url: str
    os_url: str
    repo_dir: Path
    snapshot: str
    counts: dict[str, int]  # the source's `_count` (top-level documents) per index at snapshot time


def nested_doc(i: int, version: int) -> dict[str, Any]:
    rnd = random.Random(i * 31 + version)
    return {
        "title": f"doc {i} v{version}",
        "n": i,
        "body": "lorem ipsum " * rnd.randint(20, 80),
        "parts": [{"k": f"k{i}-{j}", "v": j * version} for j in range((i + version) % 4)],
    }


def routing_of(i: int) -> str | None:
    return str(i % 7) if i % 5 == 0 else None


def _bulk(es: OpenSearch, index: str, docs: list[tuple[int, dict[str, Any]]]) -> None:
    actions = []
    for i, source in docs:
        action: dict[str, Any] = {"_index": index, "_id": str(i), "_source": source}
        if (r := routing_of(i)) is not None and index == NESTED:
            action["_routing"] = r
        actions.append(action)
    helpers.bulk(es, actions, refresh=True)


def build(es: OpenSearch, repo_dir: Path) -> dict[str, int]:
    for index in (NESTED, NOSRC, CONFLICT):
        es.indices.delete(index=index, ignore=[404])
    es.indices.create(
        index=NESTED,
        body={
            "settings": {"number_of_shards": 3, "number_of_replicas": 0, "refresh_interval": -1},
            "mappings": {
                "properties": {
                    "title": {"type": "keyword"},
                    "n": {"type": "long"},
                    "body": {"type": "text"},
                    "parts": {"type": "nested", "properties": {"k": {"type": "keyword"}, "v": {"type": "long"}}},
                }
            },
        },
    )
    half = N_NESTED // 2
    _bulk(es, NESTED, [(i, nested_doc(i, 1)) for i in range(half)])  # one segment per shard...
    _bulk(es, NESTED, [(i, nested_doc(i, 1)) for i in range(half, N_NESTED)])  # ...and another
    _bulk(es, NESTED, [(i, nested_doc(i, 2)) for i in range(0, 100)])  # updates: other child counts
    for i in range(100, 150):  # deletes
        es.delete(index=NESTED, id=str(i), routing=routing_of(i), refresh=False)
    es.indices.refresh(index=NESTED)
    es.indices.create(
        index=NOSRC,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"_source": {"enabled": False}, "properties": {"n": {"type": "long"}}},
        },
    )
    _bulk(es, NOSRC, [(i, {"n": i}) for i in range(N_NOSRC)])
    es.indices.create(
        index=CONFLICT,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"code": {"type": "keyword"}, "n": {"type": "long"}}},
        },
    )
    _bulk(es, CONFLICT, [(i, {"code": f"x-{i}", "n": i}) for i in range(N_CONFLICT)])
    counts = {}
    for index in (NESTED, NOSRC, CONFLICT):
        es.indices.refresh(index=index)
        counts[index] = int(es.count(index=index)["count"])
    es.snapshot.create_repository(repository=REPO, body={"type": "fs", "settings": {"location": str(repo_dir)}})
    es.snapshot.create(
        repository=REPO,
        snapshot=SNAPSHOT,
        body={"indices": f"{NESTED},{NOSRC},{CONFLICT}", "include_global_state": False},
        wait_for_completion=True,
    )
    return counts


def drop(es: OpenSearch) -> None:
    es.snapshot.delete(repository=REPO, snapshot=SNAPSHOT, ignore=[404])
    es.snapshot.delete_repository(repository=REPO, ignore=[404])
    for index in (NESTED, NOSRC, CONFLICT):
        es.indices.delete(index=index, ignore=[404])


def conflicting_target_index(target: OpenSearch) -> None:
    """The conflict index on the target with `code` mapped as a number: every document is refused."""
    target.indices.delete(index=CONFLICT, ignore=[404])
    target.indices.create(
        index=CONFLICT,
        body={"settings": {"number_of_shards": 1}, "mappings": {"properties": {"code": {"type": "long"}}}},
    )


def scan(client: OpenSearch, index: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    client.indices.refresh(index=index)
    return {
        h["_id"]: (h.get("_routing"), h["_source"])
        for h in helpers.scan(client, index=index, query={"query": {"match_all": {}}}, size=500)
    }
