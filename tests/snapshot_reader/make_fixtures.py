"""Build snapshot fixtures on the real clusters, for the reader's end-to-end tests.

Per cluster it makes two indices and snapshots them into a fresh fs repository registered
with `compress: true` and `chunk_size: 64kb` (so metadata is deflated and big files split
into parts):

* `<prefix>-main`: 3 shards, 20+ segments (small batches, refresh/flush often, merges held
  off), hard deletes with soft deletes OFF where the version allows it (so `.liv` files
  exist), updates, custom routing, nested docs, a > 1 MiB document, unicode and escapes;
* `<prefix>-best`: `index.codec: best_compression`, soft deletes on, deletes and updates.

Run it by hand to keep a repository around:

    python tests/snapshot_reader/make_fixtures.py http://127.0.0.1:19200 /tmp/mactl-dev/repo/snapshot_reader/x

The tests import `build_fixture` and `cleanup_fixture`, and compare the reader's output
with `cluster_view` (the cluster's own search of every live doc).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch


@dataclass
class Fixture:
    url: str
    repo_dir: Path
    repo_name: str
    snapshot: str
    indices: list[str]
    sent_sources: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (index, id) -> bytes last sent
    soft_deletes_off: bool = False
    routing: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (index, id) -> routing used


def _client(url: str) -> OpenSearch:
    return OpenSearch(url, timeout=120)


def _make_repo_dir(repo_dir: Path) -> None:
    """Create the fs repository folder, writable by the cluster (the JVM runs as another user)."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    for p in (repo_dir.parent, repo_dir):
        try:
            os.chmod(p, 0o777)
        except PermissionError:
            pass


def _bulk(client: OpenSearch, lines: list[bytes], refresh: bool) -> None:
    body = b"\n".join(lines) + b"\n"
    resp = client.bulk(body=body, refresh="true" if refresh else "false", request_timeout=120)
    if resp.get("errors"):
        bad = [i for i in resp["items"] if list(i.values())[0].get("error")]
        raise RuntimeError(f"bulk errors: {bad[:3]}")


def _create_index(client: OpenSearch, name: str, shards: int, extra: dict[str, Any]) -> bool:
    """Create the index; returns True when soft deletes could be switched off."""
    settings = {
        "number_of_shards": shards,
        "number_of_replicas": 0,
        "refresh_interval": -1,
        # keep the many small segments: merges only when a tier has 200 segments
        "merge.policy.segments_per_tier": 200,
        "merge.policy.max_merge_at_once": 200,
        "merge.policy.floor_segment": "1b",
        **extra,
    }
    mappings = {"properties": {"comments": {"type": "nested"}, "title": {"type": "text"}}}
    soft_off = extra.get("soft_deletes.enabled") is False
    try:
        client.indices.create(index=name, body={"settings": {"index": settings}, "mappings": mappings})
    except Exception:
        if not soft_off:
            raise
        settings.pop("soft_deletes.enabled")
        client.indices.create(index=name, body={"settings": {"index": settings}, "mappings": mappings})
        return False
    return soft_off


def _doc(rnd: random.Random, i: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": f"doc {i} — naïve café ☕ 日本語 😀",
        "n": i,
        "escapes": 'quote " backslash \\ tab \t newline \n nul-ish \u0001 slash /',
        "tags": [rnd.choice(["a", "b", "c"]) for _ in range(rnd.randint(0, 3))],
    }
    if i % 7 == 0:
        doc["comments"] = [{"who": f"u{j}", "text": f"comment {j} on {i}"} for j in range(rnd.randint(1, 3))]
    return doc


def _encode(doc: dict[str, Any], i: int) -> bytes:
    # vary the byte form so the test can prove `_source` comes back byte for byte
    if i % 5 == 0:
        return (
            json.dumps(doc, ensure_ascii=False, indent=1).replace("\n", "\r\n").encode()
        )  # pretty → one bulk line below
    if i % 5 == 1:
        return json.dumps(doc, ensure_ascii=True).encode()
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _fill(
    client: OpenSearch, fx: Fixture, index: str, *, batches: int, per_batch: int, rnd: random.Random, big_doc: bool
) -> None:
    next_id = 0
    ids: list[str] = []
    for b in range(batches):
        lines: list[bytes] = []
        for _ in range(per_batch):
            i = next_id
            next_id += 1
            doc_id = (
                str(i) if i % 4 == 0 else (f"id-{i}-ü" if i % 4 == 1 else uuid.UUID(int=rnd.getrandbits(128)).hex[:20])
            )
            meta: dict[str, Any] = {"_index": index, "_id": doc_id}
            if i % 6 == 0:
                meta["routing"] = f"user{i % 13}"
            src = _encode(_doc(rnd, i), i)
            if b"\n" in src:  # bulk needs one line: keep the CRs and spaces, drop the newlines
                src = src.replace(b"\r\n", b"\r")
            lines += [json.dumps({"index": meta}).encode(), src]
            fx.sent_sources[(index, doc_id)] = src
            ids.append(doc_id)
            fx.routing[(index, doc_id)] = meta.get("routing")
        # updates (re-index of earlier docs) and deletes in the same batch
        for doc_id in rnd.sample(ids[:-per_batch] or ids, k=min(3, len(ids))):
            if (index, doc_id) not in fx.sent_sources:
                continue
            meta = {"_index": index, "_id": doc_id}
            if fx.routing.get((index, doc_id)):
                meta["routing"] = fx.routing[(index, doc_id)]
            if rnd.random() < 0.5:
                src = json.dumps({"updated": True, "batch": b, "txt": 'ünïcode "q"'}, ensure_ascii=False).encode()
                lines += [json.dumps({"index": meta}).encode(), src]
                fx.sent_sources[(index, doc_id)] = src
            else:
                lines += [json.dumps({"delete": meta}).encode()]
                del fx.sent_sources[(index, doc_id)]
        if big_doc and b == batches // 2:
            blob = "".join(rnd.choice('abcdefghij "\\é') for _ in range(1_500_000))
            src = json.dumps({"big": blob, "n": -1}, ensure_ascii=False).encode()
            lines += [json.dumps({"index": {"_index": index, "_id": "big-doc"}}).encode(), src]
            fx.sent_sources[(index, "big-doc")] = src
        _bulk(client, lines, refresh=True)
        if b % 4 == 3:
            client.indices.flush(index=index, request_timeout=120)
    # one partial update: the stored source is ES-made, so only its JSON is compared
    partial_id = next(d for (ix, d) in fx.sent_sources if ix == index and d != "big-doc")
    routing = fx.routing.get((index, partial_id))
    client.update(index=index, id=partial_id, body={"doc": {"partial": "yes"}}, routing=routing, refresh="true")
    fx.sent_sources.pop((index, partial_id))
    client.indices.flush(index=index, request_timeout=120)


def build_fixture(
    url: str,
    repo_dir: Path,
    *,
    prefix: str | None = None,
    seed: int = 11,
    main_only: bool = False,
    main_codec: str | None = None,
) -> Fixture:
    """Create the indices and the snapshot on the cluster at `url`; the repository goes to `repo_dir`.

    `main_only` skips the `-best` index (the lean one-index-per-version fixtures of ES 8 and
    OpenSearch 3); `main_codec` sets `index.codec` of the main index (e.g. best_compression,
    which is zstd on ES 8.14+).
    """
    client = _client(url)
    prefix = prefix or f"snaprd-{uuid.uuid4().hex[:6]}"
    _make_repo_dir(repo_dir)
    indices = [f"{prefix}-main"] if main_only else [f"{prefix}-main", f"{prefix}-best"]
    fx = Fixture(url, repo_dir, prefix, f"{prefix}-snap", indices)
    rnd = random.Random(seed)
    extra: dict[str, Any] = {"soft_deletes.enabled": False}
    if main_codec:
        extra["codec"] = main_codec
    fx.soft_deletes_off = _create_index(client, fx.indices[0], 3, extra)
    _fill(client, fx, fx.indices[0], batches=24, per_batch=40, rnd=rnd, big_doc=True)
    if not main_only:
        _create_index(client, fx.indices[1], 2, {"codec": "best_compression"})
        _fill(client, fx, fx.indices[1], batches=8, per_batch=60, rnd=rnd, big_doc=True)
    client.snapshot.create_repository(
        repository=fx.repo_name,
        body={"type": "fs", "settings": {"location": str(repo_dir), "compress": True, "chunk_size": "64kb"}},
    )
    resp = client.snapshot.create(
        repository=fx.repo_name,
        snapshot=fx.snapshot,
        body={"indices": ",".join(fx.indices), "include_global_state": False},
        wait_for_completion=True,
        request_timeout=600,
    )
    if resp["snapshot"]["state"] != "SUCCESS":
        raise RuntimeError(f"snapshot failed: {resp}")
    return fx


def build_dense_soft_deletes(url: str, repo_dir: Path, prefix: str, docs: int = 5000, updated: int = 4500) -> Fixture:
    """One segment where more than 4095 docs are soft-deleted: a DENSE IndexedDISI block."""
    client = _client(url)
    _make_repo_dir(repo_dir)
    index = f"{prefix}-dense"
    fx = Fixture(url, repo_dir, prefix, f"{prefix}-snap", [index])
    _create_index(client, index, 1, {})
    for round_, count in (("v1", docs), ("v2", updated)):
        lines: list[bytes] = []
        for i in range(count):
            src = json.dumps({"i": i, "round": round_}).encode()
            lines += [json.dumps({"index": {"_index": index, "_id": str(i)}}).encode(), src]
            fx.sent_sources[(index, str(i))] = src
        _bulk(client, lines, refresh=True)
        client.indices.flush(index=index, request_timeout=120)
    client.snapshot.create_repository(
        repository=fx.repo_name, body={"type": "fs", "settings": {"location": str(repo_dir)}}
    )
    client.snapshot.create(
        repository=fx.repo_name,
        snapshot=fx.snapshot,
        wait_for_completion=True,
        body={"indices": index, "include_global_state": False},
        request_timeout=300,
    )
    return fx


def build_partial(url: str, repo_dir: Path, prefix: str) -> Fixture:
    """A PARTIAL snapshot: one healthy index and one whose shards can never be allocated."""
    client = _client(url)
    _make_repo_dir(repo_dir)
    fx = Fixture(url, repo_dir, prefix, f"{prefix}-snap", [f"{prefix}-ok", f"{prefix}-red"])
    client.indices.create(index=fx.indices[0], body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    client.index(index=fx.indices[0], id="1", body={"ok": True}, refresh="true")
    client.indices.create(
        index=fx.indices[1],
        params={"wait_for_active_shards": "0"},
        body={
            "settings": {
                "number_of_shards": 2,
                "number_of_replicas": 0,
                "routing.allocation.require._name": "no-such-node-anywhere",
            }
        },
    )
    client.snapshot.create_repository(
        repository=fx.repo_name, body={"type": "fs", "settings": {"location": str(repo_dir)}}
    )
    resp = client.snapshot.create(
        repository=fx.repo_name,
        snapshot=fx.snapshot,
        wait_for_completion=True,
        body={"indices": ",".join(fx.indices), "include_global_state": False, "partial": True},
        request_timeout=300,
    )
    if resp["snapshot"]["state"] != "PARTIAL":
        raise RuntimeError(f"expected a PARTIAL snapshot, got {resp['snapshot']['state']}")
    return fx


def cluster_view(fx: Fixture, index: str) -> dict[str, tuple[str | None, Any]]:
    """Every live doc as the cluster sees it: id -> (routing, parsed _source)."""
    client = _client(fx.url)
    out: dict[str, tuple[str | None, Any]] = {}
    resp = client.search(
        index=index,
        scroll="2m",
        size=500,
        body={"sort": ["_doc"]},
        params={"stored_fields": "_routing,_source"},
        request_timeout=120,
    )
    sid = resp["_scroll_id"]
    while resp["hits"]["hits"]:
        for h in resp["hits"]["hits"]:
            out[h["_id"]] = (h.get("_routing"), h["_source"])
        resp = client.scroll(scroll_id=sid, scroll="2m", request_timeout=120)
        sid = resp["_scroll_id"]
    client.clear_scroll(scroll_id=sid)
    return out


def cleanup_fixture(fx: Fixture) -> None:
    client = _client(fx.url)
    for call in (
        lambda: client.snapshot.delete(repository=fx.repo_name, snapshot=fx.snapshot, request_timeout=300),
        lambda: client.snapshot.delete_repository(repository=fx.repo_name),
        lambda: client.indices.delete(index=",".join(fx.indices), request_timeout=120),
    ):
        try:
            call()
        except Exception:
            pass
    shutil.rmtree(fx.repo_dir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        raise SystemExit(2)
    made = build_fixture(sys.argv[1], Path(sys.argv[2]))
    print(
        json.dumps(
            {
                "repo": str(made.repo_dir),
                "snapshot": made.snapshot,
                "indices": made.indices,
                "soft_deletes_off": made.soft_deletes_off,
            }
        )
    )
