"""Deterministic sample data for the demo: a few indices, a template and an alias on a source.

The same seed always gives the same documents, so a later migration's validation can compare
counts and bodies. Index names start with `demo-` and nothing else is touched.
"""

from __future__ import annotations

import json
import random
import urllib.request
from datetime import UTC, datetime, timedelta

from devtools.local.errors import LocalServiceError

PRODUCTS_INDEX = "demo-products"
LOG_INDICES = ("demo-logs-2024.01", "demo-logs-2024.02")
TEMPLATE = "demo-logs"
ALIAS = "demo-logs"

_WORDS = "steel oak linen wool copper glass walnut cotton marble bamboo cedar leather".split()
_KINDS = "chair table lamp shelf rug desk stool mirror vase bench".split()


def _request(url: str, method: str, path: str, body: object | None = None, ndjson: str | None = None) -> dict:
    data = ndjson.encode() if ndjson is not None else (json.dumps(body).encode() if body is not None else None)
    ctype = "application/x-ndjson" if ndjson is not None else "application/json"
    req = urllib.request.Request(f"{url}{path}", data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as err:
        raise LocalServiceError(f"{method} {url}{path} failed: {err.code} {err.read()[:500]!r}") from err
    except OSError as err:
        raise LocalServiceError(f"{url} does not answer: {err}", hint="is it up? `scripts/clusters status`") from err


def products(count: int, rng: random.Random) -> list[dict]:
    return [
        {
            "sku": f"SKU-{i:05d}",
            "name": f"{rng.choice(_WORDS)} {rng.choice(_KINDS)}",
            "price": round(rng.uniform(5, 900), 2),
            "stock": rng.randint(0, 500),
            "tags": sorted(rng.sample(_WORDS, 2)),
        }
        for i in range(count)
    ]


def log_lines(month: int, count: int, rng: random.Random) -> list[dict]:
    start = datetime(2024, month, 1, tzinfo=UTC)
    return [
        {
            "@timestamp": (start + timedelta(seconds=rng.randint(0, 27 * 86400))).isoformat(),
            "level": rng.choices(["INFO", "WARN", "ERROR"], weights=[80, 15, 5])[0],
            "service": rng.choice(["checkout", "search", "cart", "auth"]),
            "latency_ms": rng.randint(1, 2000),
            "message": f"request {i} handled",
        }
        for i in range(count)
    ]


def _bulk(url: str, index: str, docs: list[dict], id_field: str | None) -> None:
    lines = []
    for i, doc in enumerate(docs):
        lines.append(json.dumps({"index": {"_index": index, "_id": doc[id_field] if id_field else str(i)}}))
        lines.append(json.dumps(doc))
    result = _request(url, "POST", "/_bulk?refresh=true", ndjson="\n".join(lines) + "\n")
    if result.get("errors"):
        raise LocalServiceError(f"bulk load into {url}/{index} reported errors")


def load_sample(url: str, *, docs_per_index: int = 1000, seed: int = 42) -> dict[str, int]:
    """(Re)create the demo indices on the cluster at `url`; returns documents per index."""
    url = url.rstrip("/")
    rng = random.Random(seed)
    for index in (PRODUCTS_INDEX, *LOG_INDICES):
        _request(url, "DELETE", f"/{index}?ignore_unavailable=true")
    _request(
        url,
        "PUT",
        f"/_template/{TEMPLATE}",
        {
            "index_patterns": ["demo-logs-*"],
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "properties": {
                    "@timestamp": {"type": "date"},
                    "level": {"type": "keyword"},
                    "service": {"type": "keyword"},
                    "latency_ms": {"type": "integer"},
                    "message": {"type": "text"},
                }
            },
            "aliases": {ALIAS: {}},
        },
    )
    _request(
        url,
        "PUT",
        f"/{PRODUCTS_INDEX}",
        {
            "settings": {"number_of_shards": 2, "number_of_replicas": 0},
            "mappings": {
                "properties": {
                    "sku": {"type": "keyword"},
                    "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                    "price": {"type": "double"},
                    "stock": {"type": "integer"},
                    "tags": {"type": "keyword"},
                }
            },
        },
    )
    counts = {PRODUCTS_INDEX: docs_per_index}
    _bulk(url, PRODUCTS_INDEX, products(docs_per_index, rng), "sku")
    for month, index in enumerate(LOG_INDICES, start=1):
        _bulk(url, index, log_lines(month, docs_per_index, rng), None)
        counts[index] = docs_per_index
    return counts


def _found(url: str, path: str) -> dict | None:
    """GET `path`, or None when the cluster answers 404 (nothing by that name)."""
    try:
        return _request(url, "GET", path)
    except LocalServiceError as exc:
        if isinstance(exc.__cause__, urllib.error.HTTPError) and exc.__cause__.code == 404:
            return None
        raise


def forget_previous_demo(source_url: str, target_url: str, repository: str) -> list[str]:
    """Remove what a demo run from another checkout left on the local clusters.

    The demo's state lives in its checkout, but the clusters (and their snapshot folder)
    are shared by every checkout on the machine: a second checkout's demo would meet the
    first one's snapshot ("mactl did not create it") and migrated indices. Only the demo's
    own names are touched: the snapshot repository it registers, and `demo-` indices and
    templates on the target. Returns what was removed, for the demo to say.
    """
    removed: list[str] = []
    listing = _found(source_url, f"/_snapshot/{repository}/_all")
    if listing is None:
        return removed  # no such repository: nothing was left behind
    snapshots = listing["snapshots"]
    for snap in snapshots:
        _request(source_url, "DELETE", f"/_snapshot/{repository}/{snap['snapshot']}")
        removed.append(f"snapshot {snap['snapshot']}")
    _request(source_url, "DELETE", f"/_snapshot/{repository}")
    removed.append(f"repository {repository}")
    indices = _request(target_url, "GET", "/_cat/indices/demo-*?format=json&expand_wildcards=all")
    if indices:
        _request(target_url, "DELETE", "/demo-*?expand_wildcards=all")
        removed.append(f"{len(indices)} demo- indices on the target")
    legacy = list(_found(target_url, "/_template/demo-*") or {})  # 404 when none matches
    composable = [t["name"] for t in (_found(target_url, "/_index_template/demo-*") or {}).get("index_templates", [])]
    for path in [f"/_template/{n}" for n in legacy] + [f"/_index_template/{n}" for n in composable]:
        _request(target_url, "DELETE", path)
        removed.append(f"template {path.rsplit('/', 1)[1]} on the target")
    return removed
