"""Benchmark: the validate stage's sampled-document check against a plain read of the snapshot.

    source /tmp/mactl-dev/env.sh && python bench/validate_sample.py [--docs 50000] [--sample 100]

Builds a 2-shard index of small documents on the ES 7.10.2 source, snapshots it to an
fs repository, copies it to the OpenSearch 2.x target, then measures in one run:

  (a) `check_sample`: every snapshot document hashed to draw `--sample` random ids, the
      picked documents transformed (a jinja transform) and fetched from the target;
  (b) the peer: the snapshot reader iterating every document of the same index and
      nothing else (the floor for anything that reads the whole snapshot);
  (c) the full validation of the index (`run_validation`: count, sample, mappings).

It prints seconds and the ratios a/b and c/b. Everything is named `vs-bench-*` and
deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from opensearchpy import OpenSearch, helpers

from mactl.audit.checks import check_sample, run_validation
from mactl.schema.common import ClusterRef, SnapshotRepository
from mactl.schema.validate import ValidateInputs
from mactl.snapshot_reader import open_repository


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--sample", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    es_url, os_url = os.environ["MACTL_TEST_ES710_URL"], os.environ["MACTL_TEST_OS2_URL"]
    uid = uuid.uuid4().hex[:6]
    index, repo_name = f"vs-bench-{uid}", f"vs-bench-{uid}"
    repo_dir = Path(os.environ["MACTL_TEST_REPO_DIR"]) / "workflow" / f"bench-{uid}"
    repo_dir.mkdir(parents=True, exist_ok=True)
    for p in (repo_dir.parent, repo_dir):
        p.chmod(0o777)
    es, target = OpenSearch(hosts=[es_url], timeout=120), OpenSearch(hosts=[os_url], timeout=120)
    docs = [
        {"_index": index, "_id": f"d{i}", "_source": {"n": i, "word": f"w{i % 97}", "pad": "x" * 64}}
        for i in range(args.docs)
    ]
    try:
        body = {"settings": {"number_of_shards": 2, "number_of_replicas": 0}}
        es.indices.create(index=index, body=body)
        target.indices.create(index=index, body=body)
        helpers.bulk(es, docs, refresh=True)
        helpers.bulk(target, [{**d, "_source": {**d["_source"], "seen": True}} for d in docs], refresh=True)
        es.snapshot.create_repository(
            repository=repo_name, body={"type": "fs", "settings": {"location": str(repo_dir)}}
        )
        es.snapshot.create(repository=repo_name, snapshot="s1", body={"indices": index}, wait_for_completion=True)
        repository = SnapshotRepository(type="fs", name=repo_name, location=str(repo_dir))
        repo = open_repository(repository)
        transforms = [{"kind": "jinja", "template": '{"_source": {{ dict(_source, seen=true) | tojson }}}'}]
        fact = {
            "index": index,
            "snapshotName": "s1",
            "transforms": transforms,
            "sample": None,
            "renamed": False,
            "expected": args.docs,
            "skipped": 0,
            "dropped": 0,
        }

        started = time.perf_counter()
        n = sum(1 for shard in range(repo.shard_count("s1", index)) for _ in repo.documents("s1", index, shard))
        peer = time.perf_counter() - started
        assert n == args.docs

        started = time.perf_counter()
        sample = check_sample(fact, repo, target, None, args.sample, b"bench", 10**9, 1.0)
        sampled = time.perf_counter() - started
        assert sample["checked"] == args.sample == sample["matched"], sample

        upstream = {
            "backfill.b.s.t.m.b": {
                "indices": {index: {"live": args.docs, "skippedBySampling": 0, "dropped": 0, "failed": 0}},
                "targetIndices": {index: {"expected": args.docs, "actual": args.docs}},
                "snapshotName": "s1",
                "transforms": transforms,
            }
        }
        inputs = ValidateInputs(
            source=ClusterRef(name="es", endpoint=es_url),
            target=ClusterRef(name="os", endpoint=os_url),
            repository=repository,
            snapshotName="s1",
            sampleSize=args.sample,
            seed=1,
        )
        ctx = SimpleNamespace(
            address="validate.es.os",
            upstream=upstream,
            workdir=Path("/tmp") / f"vs-bench-{uid}" / "v",
            progress=lambda _p: None,
            cancelled=threading.Event(),
        )
        started = time.perf_counter()
        report = run_validation(ctx, inputs, [])
        full = time.perf_counter() - started
        assert report["passed"], report["failures"]

        result = {
            "docs": args.docs,
            "sample": args.sample,
            "snapshot_scan_s": round(peer, 3),
            "check_sample_s": round(sampled, 3),
            "run_validation_s": round(full, 3),
            "sample_over_scan": round(sampled / peer, 2),
            "validation_over_scan": round(full / peer, 2),
        }
        print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    finally:
        es.indices.delete(index=index, ignore=[404])
        target.indices.delete(index=index, ignore=[404])
        try:
            es.snapshot.delete(repository=repo_name, snapshot="s1")
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass
        es.snapshot.delete_repository(repository=repo_name, ignore=[404])
        shutil.rmtree(repo_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
