"""Benchmark: the snapshot reader vs scrolling the live source, same data, same run.

Loads N (default 1,000,000) ~1 KB documents into a real cluster (default: the ES 8.x source,
`MACTL_TEST_ES8_URL`; `--url` for ES 7.10.2 or any other), with `--codec` choosing the
stored-fields codec (`best_compression` is zstd on ES 8.14+, `default` LZ4), snapshots it to
an fs repository under the shared path.repo, then measures:

* the reader: every live document of every shard read straight from the snapshot files,
  pinned to ONE core;
* the peer: scrolling the same index from the live cluster with opensearch-py (batches of 10k).

Per core: the reader's docs per CPU-second (it uses one core) against the scroll's docs per
CPU-second spent by the cluster's JVM (`_nodes/stats` process CPU) plus the scrolling client.
It also prints wall-clock docs/s and MB/s (of `_source` bytes) for both and their ratio, then
deletes the index, the snapshot and the repository folder. Run it by hand; CI does not.

    python bench/snapshot_read.py [--docs 1000000] [--codec best_compression] [--url http://127.0.0.1:19202]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import shutil
import string
import sys
import time
import uuid
from pathlib import Path

from opensearchpy import OpenSearch, helpers

from mactl.snapshot_reader import open_repository


def _pin_one_core() -> None:
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass


def _docs(index: str, n: int, seed: int = 7):
    rnd = random.Random(seed)
    words = ["".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(3, 10))) for _ in range(5000)]
    for i in range(n):
        body = " ".join(rnd.choices(words, k=120))[:900]
        yield {
            "_index": index,
            "_id": f"doc-{i}" if i % 3 else str(i),  # a mix of utf-8 and numeric ids
            "_source": {"n": i, "title": f"title {i}", "tag": words[i % 5000], "body": body},
        }


def load(client: OpenSearch, index: str, n: int, codec: str) -> None:
    settings = {"number_of_shards": 2, "number_of_replicas": 0, "refresh_interval": "-1", "codec": codec}
    client.indices.create(index=index, body={"settings": settings})
    t0 = time.perf_counter()
    done = 0
    for _ok, _ in helpers.streaming_bulk(
        client, _docs(index, n), chunk_size=5000, request_timeout=300, max_chunk_bytes=20 << 20
    ):
        done += 1
        if done % 100000 == 0:
            print(f"  loaded {done} docs ({done / (time.perf_counter() - t0):.0f}/s)", flush=True)
    client.indices.refresh(index=index, request_timeout=300)
    client.indices.flush(index=index, request_timeout=300)
    print(f"loaded {n} docs in {time.perf_counter() - t0:.1f}s", flush=True)


def read_snapshot(repo_dir: Path, snap: str, index: str, profile: bool) -> tuple[int, int, float, float]:
    repo = open_repository(repo_dir)
    info = repo.snapshot(snap)
    prof = cProfile.Profile() if profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    docs = nbytes = 0
    for shard in range(repo.shard_count(info, index)):
        for d in repo.documents(info, index, shard):
            docs += 1
            nbytes += len(d.source)
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(12)
    return docs, nbytes, time.perf_counter() - t0, time.process_time() - c0


def server_cpu_seconds(client: OpenSearch) -> float:
    """CPU the cluster's JVM has used so far (single-node clusters: the one node)."""
    stats = client.nodes.stats(node_id="_local", metric="process")
    return sum(n["process"]["cpu"]["total_in_millis"] for n in stats["nodes"].values()) / 1000


def scroll(client: OpenSearch, index: str) -> tuple[int, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    docs = 0
    resp = client.search(index=index, scroll="5m", size=10000, body={"sort": ["_doc"]}, request_timeout=300)
    sid = resp["_scroll_id"]
    while resp["hits"]["hits"]:
        docs += len(resp["hits"]["hits"])
        resp = client.scroll(scroll_id=sid, scroll="5m", request_timeout=300)
        sid = resp["_scroll_id"]
    client.clear_scroll(scroll_id=sid)
    return docs, time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--url", default=os.environ.get("MACTL_TEST_ES8_URL", "http://127.0.0.1:19202"))
    ap.add_argument("--codec", default="best_compression", help="index.codec: default | best_compression")
    ap.add_argument("--repo-root", default=os.environ.get("MACTL_TEST_REPO_DIR", "/tmp/mactl-dev/repo"))
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the reader run")
    args = ap.parse_args()

    run = uuid.uuid4().hex[:8]
    index, snap, repo_name = f"snaprd-bench-{run}", f"snaprd-bench-{run}", f"snaprd-bench-{run}"
    repo_dir = Path(args.repo_root) / "snapshot_reader" / f"bench-{run}"
    client = OpenSearch(args.url, timeout=300)
    try:
        load(client, index, args.docs, args.codec)
        repo_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(repo_dir.parent, 0o777)
        os.chmod(repo_dir, 0o777)
        client.snapshot.create_repository(
            repository=repo_name, body={"type": "fs", "settings": {"location": str(repo_dir)}}
        )
        t0 = time.perf_counter()
        client.snapshot.create(
            repository=repo_name,
            snapshot=snap,
            body={"indices": index, "include_global_state": False},
            wait_for_completion=True,
            request_timeout=1800,
        )
        print(f"snapshot taken in {time.perf_counter() - t0:.1f}s", flush=True)
        _pin_one_core()
        # the peer first, so page-cache warmth favours it, not us
        server0 = server_cpu_seconds(client)
        s_docs, s_wall, s_cpu = scroll(client, index)
        s_server_cpu = server_cpu_seconds(client) - server0
        r_docs, r_bytes, r_wall, r_cpu = read_snapshot(repo_dir, snap, index, args.profile)
        if r_docs != s_docs or r_docs != args.docs:
            print(f"MISMATCH: reader {r_docs} docs, scroll {s_docs}, loaded {args.docs}", file=sys.stderr)
        mb = r_bytes / 1e6
        version = next(iter(client.nodes.info(node_id="_local")["nodes"].values()))["version"]
        result = {
            "cluster": version,
            "codec": args.codec,
            "docs": r_docs,
            "source_mb": round(mb, 1),
            "reader": {
                "seconds": round(r_wall, 2),
                "cpu_seconds": round(r_cpu, 2),
                "docs_per_s": round(r_docs / r_wall),
                "mb_per_s": round(mb / r_wall, 1),
            },
            "scroll": {
                "seconds": round(s_wall, 2),
                "client_cpu_seconds": round(s_cpu, 2),
                "server_cpu_seconds": round(s_server_cpu, 2),
                "docs_per_s": round(s_docs / s_wall),
                "mb_per_s": round(mb / s_wall, 1),
            },
            "ratio_reader_vs_scroll": round((r_docs / r_wall) / (s_docs / s_wall), 2),
            "per_core": {
                "reader_docs_per_cpu_s": round(r_docs / r_cpu),
                "scroll_docs_per_cpu_s": round(s_docs / (s_cpu + s_server_cpu)),
                "ratio": round((r_docs / r_cpu) / (s_docs / (s_cpu + s_server_cpu)), 2),
            },
        }
        print(json.dumps(result, indent=2))
        return 0
    finally:
        for call in (
            lambda: client.snapshot.delete(repository=repo_name, snapshot=snap, request_timeout=600),
            lambda: client.snapshot.delete_repository(repository=repo_name),
            lambda: client.indices.delete(index=index, request_timeout=300),
        ):
            try:
                call()
            except Exception as err:  # cleanup must try every step
                print(f"cleanup: {err}", file=sys.stderr)
        shutil.rmtree(repo_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
