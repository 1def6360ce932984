"""Benchmark: backfill workers as a Kubernetes Job against the same workers as local processes.

    eval "$(scripts/clusters env)"; eval "$(scripts/kube env)"
    python bench/kube_backfill.py [--docs 100000] [--replicas 1,2,3] [--reuse]

Uses bench/backfill.py's 6-shard source of ~1 KB documents (built and snapshotted on the ES
7.10.2 source unless --reuse finds it), then copies it into a fresh index on the OpenSearch
2.x target, once per row:

  (local N)  the stage's local coordinator with N worker processes;
  (kube N)   the kubernetes executor with replicas = N: a Job on the `scripts/kube` control
             plane, whose pods are local processes on its node (so the same machine's cores).

It prints docs/s for each row, and kube/local at equal N: the cost of running through the API
server, the Job controller and pod start-up rather than forking. Both rows pass the stage's
exit check (the ledger balances with the snapshot). Everything is named `bf-kbench-*`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch

_spec = importlib.util.spec_from_file_location("bench_backfill", Path(__file__).with_name("backfill.py"))
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
# Names of its own, so it never touches a bench/backfill.py run's index or snapshot.
bench.SRC_INDEX, bench.REPO, bench.SNAP = "bf-kbench-src", "bf-kbench-repo", "bf-kbench-snap"
bench.REPO_DIR = bench.REPO_DIR.parent / "kube-bench"


def run(target: OpenSearch, workdir: Path, *, replicas: int, kube: str | None) -> tuple[float, int]:
    from mactl.backfill.coordinator import run_stage
    from mactl.backfill.spec import build_spec
    from mactl.backfill.verify import check_counts
    from mactl.executors.kubernetes import run_job
    from mactl.schema.backfill import BackfillInputs
    from mactl.schema.executor import KubernetesExecutor

    inputs = BackfillInputs.model_validate(
        {
            "target": {"name": "target", "endpoint": bench.OS_URL},
            "repository": {"type": "fs", "location": str(bench.REPO_DIR)},
            "snapshotName": bench.SNAP,
            "indices": [{"names": [bench.SRC_INDEX]}],
            "workers": replicas,
            "deadLetter": {"location": str(workdir / "dead-letters")},
        }
    )
    address = f"backfill.bench.snap.t.m{uuid.uuid4().hex[:6]}.b0"
    spec = build_spec(address, inputs, workdir=workdir)
    bench.fresh_target(target, bench.SRC_INDEX)
    started = time.perf_counter()
    if kube:
        executor = KubernetesExecutor.model_validate(
            {"type": "kubernetes", "image": "mactl:bench", "replicas": replicas, "kubeconfig": kube}
        )
        result = run_job(spec, executor)
    else:
        result = run_stage(spec, workers=replicas, workdir=workdir)
    count = bench.finish_count(target, bench.SRC_INDEX)
    elapsed = time.perf_counter() - started
    check = check_counts(target, result.snapshot)
    if not check.ok:
        raise SystemExit(f"the exit check failed: {check.differences}")
    target.indices.delete(index=spec.state_index, ignore=[404])
    target.indices.delete(index=bench.SRC_INDEX, ignore=[404])
    return elapsed, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--replicas", default="1,3", help="comma list of worker counts")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    kube = os.environ.get("MACTL_TEST_KUBECONFIG")
    if not kube:
        raise SystemExit('MACTL_TEST_KUBECONFIG is not set: scripts/kube up; eval "$(scripts/kube env)"')
    es = OpenSearch(bench.ES_URL, timeout=300)
    target = OpenSearch(bench.OS_URL, timeout=300)
    have = es.indices.exists(index=bench.SRC_INDEX) and es.count(index=bench.SRC_INDEX)["count"] == args.docs
    if not (args.reuse and have):
        print(f"building {args.docs:,} docs on ES 7.10.2 and snapshotting…", file=sys.stderr)
        bench.build_source(es, bench.make_docs(args.docs))
    results: dict[str, Any] = {"docs": args.docs, "cores": os.cpu_count(), "rows": []}
    workdir = Path(f"/tmp/bf-kube-bench-{uuid.uuid4().hex[:6]}")
    try:
        for n in [int(x) for x in args.replicas.split(",")]:
            row: dict[str, Any] = {"replicas": n}
            for kind in ("local", "kube"):
                elapsed, count = run(target, workdir / f"{kind}{n}", replicas=n, kube=kube if kind == "kube" else None)
                row[kind] = {"seconds": round(elapsed, 2), "docs_per_s": round(count / elapsed)}
                print(f"({kind} {n}) {count:,} docs in {elapsed:.1f}s = {count / elapsed:,.0f} docs/s", file=sys.stderr)
            row["kube_over_local"] = round(row["kube"]["docs_per_s"] / row["local"]["docs_per_s"], 2)
            results["rows"].append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            es.snapshot.delete(repository=bench.REPO, snapshot=bench.SNAP, ignore=[404], request_timeout=600)
            es.snapshot.delete_repository(repository=bench.REPO, ignore=[404])
            es.indices.delete(index=bench.SRC_INDEX, ignore=[404])
            shutil.rmtree(bench.REPO_DIR, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
