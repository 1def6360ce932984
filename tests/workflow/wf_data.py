"""Test data for the workflow tests: the demo's sample indices under a unique prefix.

The shared clusters already hold other areas' `demo-*` indices, so these tests load the
same generated documents (`devtools.local.sample`) as `<prefix>-products` and
`<prefix>-logs-2024.01`, with the sample loader's mappings, and clean them up.
"""

from __future__ import annotations

import json
import random
import urllib.request
from typing import Any

from opensearchpy import OpenSearch, helpers

from devtools.local.sample import log_lines, products

PRODUCTS_MAPPING = {
    "properties": {
        "sku": {"type": "keyword"},
        "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "price": {"type": "double"},
        "stock": {"type": "integer"},
        "tags": {"type": "keyword"},
    }
}
LOGS_MAPPING = {
    "properties": {
        "@timestamp": {"type": "date"},
        "level": {"type": "keyword"},
        "service": {"type": "keyword"},
        "latency_ms": {"type": "integer"},
        "message": {"type": "text"},
    }
}


def request(url: str, method: str, path: str, body: Any = None, ndjson: str | None = None) -> Any:
    data = ndjson.encode() if ndjson is not None else (json.dumps(body).encode() if body is not None else None)
    ctype = "application/x-ndjson" if ndjson is not None else "application/json"
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        if method == "DELETE" and err.code == 404:
            return None
        raise


def docs_of(url: str, index: str) -> dict[str, Any]:
    """Every document of `index` (refreshed first): id -> `_source`."""
    client = OpenSearch(hosts=[url], timeout=60)
    client.indices.refresh(index=index)
    return {h["_id"]: h["_source"] for h in helpers.scan(client, index=index, query={"query": {"match_all": {}}})}


def index_names(url: str, pattern: str) -> set[str]:
    """The names of the indices matching `pattern`, hidden ones included."""
    return {row["index"] for row in request(url, "GET", f"/_cat/indices/{pattern}?format=json&expand_wildcards=all")}


def load(url: str, prefix: str, docs: int = 400) -> dict[str, int]:
    """Create `<prefix>-products` (2 shards) and `<prefix>-logs-2024.01` (1 shard)."""
    rng = random.Random(7)
    out = {}
    for name, mapping, shards, rows, id_field in (
        (f"{prefix}-products", PRODUCTS_MAPPING, 2, products(docs, rng), "sku"),
        (f"{prefix}-logs-2024.01", LOGS_MAPPING, 1, log_lines(1, docs, rng), None),
    ):
        request(url, "DELETE", f"/{name}")
        request(
            url,
            "PUT",
            f"/{name}",
            {"settings": {"number_of_shards": shards, "number_of_replicas": 0}, "mappings": mapping},
        )
        lines = []
        for i, doc in enumerate(rows):
            lines += [
                json.dumps({"index": {"_index": name, "_id": doc[id_field] if id_field else str(i)}}),
                json.dumps(doc),
            ]
        result = request(url, "POST", "/_bulk?refresh=true", ndjson="\n".join(lines) + "\n")
        assert not result["errors"]
        out[name] = docs
    return out


def drop(url: str, prefix: str) -> None:
    for name in (f"{prefix}-products", f"{prefix}-logs-2024.01"):
        request(url, "DELETE", f"/{name}")
