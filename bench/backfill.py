"""Benchmark: the RFS backfill stage against its peers, on the same machine, in one run.

    source /tmp/mactl-dev/env.sh && python bench/backfill.py [--docs 1000000] [--reuse]

Builds (or, with --reuse, keeps) a 6-shard index of ~1 KB documents on the ES 7.10.2
source and snapshots it to an fs repository, then measures, each into a fresh 6-shard
index on the OpenSearch 2.x target (0 replicas, refresh off, like a real bulk load):

  (a) the mactl backfill stage (`workers` = cores), reading the snapshot files;
  (b) OpenSearch `_reindex` from remote, pulling the live index from ES 7.10.2
      (needs the reindex module and `reindex.remote.allowlist` on the target; skipped
      with the reason when the target lacks them);
  (c) opensearch-py `parallel_bulk` of the same documents already in memory (the ceiling).

It prints docs/s for each and the ratios a/b and a/c, as text and (--json) as JSON.
Everything it creates is named `bf-bench-*` and deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import string
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers

SRC_INDEX = "bf-bench-src"
REPO = "bf-bench-repo"
SNAP = "bf-bench-snap"
SHARDS = 6
ES_URL = os.environ.get("MACTL_TEST_ES710_URL", "http://127.0.0.1:19200")
OS_URL = os.environ.get("MACTL_TEST_OS2_URL", "http://127.0.0.1:29200")
REPO_DIR = Path(os.environ.get("MACTL_TEST_REPO_DIR", "/tmp/mactl-dev/repo")) / "backfill" / "bench"
TARGET_BODY = {"settings": {"number_of_shards": SHARDS, "number_of_replicas": 0, "refresh_interval": "-1"}}


def make_docs(n: int, seed: int = 42) -> list[tuple[str, dict[str, Any]]]:
    """n documents of about 1 KB of JSON each, deterministic."""
    rnd = random.Random(seed)
    words = ["".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(3, 9))) for _ in range(2000)]
    docs = []
    for i in range(n):
        body = " ".join(rnd.choices(words, k=130))
        docs.append(
            (
                f"doc-{i}",
                {
                    "title": " ".join(rnd.choices(words, k=6)),
                    "body": body,
                    "n": i,
                    "tag": words[i % 50],
                    "score": rnd.random(),
                },
            )
        )
    return docs


def build_source(es: OpenSearch, docs: list[tuple[str, dict[str, Any]]]) -> None:
    es.indices.delete(index=SRC_INDEX, ignore=[404])
    es.indices.create(
        index=SRC_INDEX,
        body={"settings": {"number_of_shards": SHARDS, "number_of_replicas": 0, "refresh_interval": "-1"}},
    )
    actions = ({"_index": SRC_INDEX, "_id": i, "_source": s} for i, s in docs)
    for ok, info in helpers.parallel_bulk(es, actions, thread_count=3, chunk_size=2000, request_timeout=300):
        if not ok:
            raise SystemExit(f"source load failed: {info}")
    es.indices.put_settings(index=SRC_INDEX, body={"index": {"refresh_interval": "1s"}})
    es.indices.refresh(index=SRC_INDEX)
    es.indices.flush(index=SRC_INDEX)
    REPO_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(REPO_DIR, 0o777)
    os.chmod(REPO_DIR.parent, 0o777)
    es.snapshot.delete(repository=REPO, snapshot=SNAP, ignore=[404])
    es.snapshot.create_repository(repository=REPO, body={"type": "fs", "settings": {"location": str(REPO_DIR)}})
    es.snapshot.create(
        repository=REPO,
        snapshot=SNAP,
        body={"indices": SRC_INDEX, "include_global_state": False},
        wait_for_completion=True,
        request_timeout=1800,
    )


def fresh_target(client: OpenSearch, index: str) -> None:
    client.indices.delete(index=index, ignore=[404])
    client.indices.create(index=index, body=TARGET_BODY)


def finish_count(client: OpenSearch, index: str) -> int:
    client.indices.refresh(index=index, request_timeout=600)
    return int(client.count(index=index)["count"])


def run_mactl(client: OpenSearch, workers: int, workdir: Path) -> tuple[float, int]:
    from mactl.backfill.coordinator import run_stage
    from mactl.backfill.spec import build_spec
    from mactl.backfill.verify import check_counts
    from mactl.schema.backfill import BackfillInputs

    inputs = BackfillInputs.model_validate(
        {
            "target": {"name": "target", "endpoint": OS_URL},
            "repository": {"type": "fs", "location": str(REPO_DIR)},
            "snapshotName": SNAP,
            "indices": [{"names": [SRC_INDEX]}],
            "workers": workers,
        }
    )
    address = f"backfill.bench.snap.t.m{uuid.uuid4().hex[:6]}.b0"
    spec = build_spec(address, inputs, workdir=workdir)
    fresh_target(client, SRC_INDEX)
    started = time.perf_counter()
    last = [0.0]

    def report(snap: Any, rates: Any) -> None:
        if time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            print(f"  (a) {snap.done_docs:,}/{snap.total_docs:,} docs, {rates.rate():,.0f} docs/s", file=sys.stderr)

    run = run_stage(spec, workers=workers, workdir=workdir, on_progress=report)
    count = finish_count(client, SRC_INDEX)
    elapsed = time.perf_counter() - started
    check = check_counts(client, run.snapshot)
    if not check.ok:
        raise SystemExit(f"(a) the exit check failed: {check.differences}; worker logs in {workdir / 'workers'}")
    client.indices.delete(index=spec.state_index, ignore=[404])
    client.indices.delete(index=SRC_INDEX, ignore=[404])
    return elapsed, count


def reindex_available(client: OpenSearch) -> str | None:
    """None when `_reindex` from remote can run; otherwise why not."""
    modules = {
        m["name"] for node in client.nodes.info(metric="plugins")["nodes"].values() for m in node.get("modules", [])
    }
    if "reindex" not in modules:
        return f"the target has no reindex module (modules: {', '.join(sorted(modules))})"
    settings = client.cluster.get_settings(include_defaults=True, flat_settings=True)
    allow = {**settings.get("defaults", {}), **settings.get("persistent", {})}
    allowed = allow.get("reindex.remote.allowlist") or allow.get("reindex.remote.whitelist")
    if not allowed or allowed in ("[]", []):
        return "the target's reindex.remote.allowlist is empty"
    return None


def run_reindex(client: OpenSearch) -> tuple[float, int]:
    index = "bf-bench-b"
    fresh_target(client, index)
    started = time.perf_counter()
    client.reindex(
        body={"source": {"remote": {"host": ES_URL}, "index": SRC_INDEX, "size": 1000}, "dest": {"index": index}},
        wait_for_completion=True,
        request_timeout=7200,
    )
    count = finish_count(client, index)
    elapsed = time.perf_counter() - started
    client.indices.delete(index=index, ignore=[404])
    return elapsed, count


def run_parallel_bulk(client: OpenSearch, docs: list[tuple[str, dict[str, Any]]], threads: int) -> tuple[float, int]:
    index = "bf-bench-c"
    fresh_target(client, index)
    started = time.perf_counter()
    actions = ({"_index": index, "_id": i, "_source": s} for i, s in docs)
    for ok, info in helpers.parallel_bulk(client, actions, thread_count=threads, chunk_size=1000, request_timeout=300):
        if not ok:
            raise SystemExit(f"parallel_bulk failed: {info}")
    count = finish_count(client, index)
    elapsed = time.perf_counter() - started
    client.indices.delete(index=index, ignore=[404])
    return elapsed, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument(
        "--reuse", action="store_true", help="keep an existing source index and snapshot of the right size"
    )
    parser.add_argument("--keep", action="store_true", help="do not delete the source index and snapshot afterwards")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="abc", help="which measurements to run (subset of abc)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    es = OpenSearch(ES_URL, timeout=300)
    target = OpenSearch(OS_URL, timeout=300)
    docs = make_docs(args.docs)
    have = es.indices.exists(index=SRC_INDEX) and es.count(index=SRC_INDEX)["count"] == args.docs
    if not (args.reuse and have):
        print(f"building {args.docs:,} docs on ES 7.10.2 and snapshotting…", file=sys.stderr)
        t = time.perf_counter()
        build_source(es, docs)
        print(f"  source ready in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    results: dict[str, Any] = {"docs": args.docs, "workers": args.workers, "cores": os.cpu_count()}
    workdir = Path(f"/tmp/bf-bench-work-{uuid.uuid4().hex[:6]}")
    try:
        if "a" in args.only:
            elapsed, count = run_mactl(target, args.workers, workdir)
            results["a_mactl"] = {"seconds": round(elapsed, 2), "count": count, "docs_per_s": round(count / elapsed)}
            print(
                f"(a) mactl backfill: {count:,} docs in {elapsed:.1f}s = {count / elapsed:,.0f} docs/s", file=sys.stderr
            )
        if "b" in args.only:
            why_not = reindex_available(target)
            if why_not is None:
                elapsed, count = run_reindex(target)
                results["b_reindex_remote"] = {
                    "seconds": round(elapsed, 2),
                    "count": count,
                    "docs_per_s": round(count / elapsed),
                }
                print(
                    f"(b) _reindex from remote: {count:,} docs in {elapsed:.1f}s = {count / elapsed:,.0f} docs/s",
                    file=sys.stderr,
                )
            else:
                results["b_reindex_remote"] = {"skipped": why_not}
                print(f"(b) _reindex from remote: not measured: {why_not}", file=sys.stderr)
        if "c" in args.only:
            elapsed, count = run_parallel_bulk(target, docs, threads=4)
            results["c_parallel_bulk"] = {
                "seconds": round(elapsed, 2),
                "count": count,
                "docs_per_s": round(count / elapsed),
            }
            print(
                f"(c) parallel_bulk from memory: {count:,} docs in {elapsed:.1f}s = {count / elapsed:,.0f} docs/s",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            es.snapshot.delete(repository=REPO, snapshot=SNAP, ignore=[404], request_timeout=600)
            es.snapshot.delete_repository(repository=REPO, ignore=[404])
            es.indices.delete(index=SRC_INDEX, ignore=[404])
            shutil.rmtree(REPO_DIR, ignore_errors=True)
    a = results.get("a_mactl", {}).get("docs_per_s")
    b = results.get("b_reindex_remote", {}).get("docs_per_s")
    c = results.get("c_parallel_bulk", {}).get("docs_per_s")
    if a and b:
        results["a_over_b"] = round(a / b, 2)
    if a and c:
        results["a_over_c"] = round(a / c, 2)
    print(json.dumps(results, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
