"""Metadata migration at scale: the metadata stage vs a plain opensearch-py loop, same run.

Creates N indices (default 1,000) with distinct mappings on the ES 7.10.2 source (unique
prefix, 1 shard, 0 replicas), then, in alternating rounds on the OpenSearch 2.x target:
  - "plain": a sequential opensearch-py loop creating the same indices (same bodies);
  - "stage": the metadata provider's apply (read source, select, transform, check the
    target for conflicts, create), and its rollback (timed separately).
Everything is deleted between rounds and at the end. Prints the times and the ratio
stage/plain; the goal is ≤ 1.5.

Needs the shared clusters (`source /tmp/mactl-dev/env.sh`). 1,000 indices exceed the
default `cluster.max_shards_per_node` (1,000) once other indices exist, so the limit is
raised transiently on both clusters for the run and reset afterwards.

    python bench/metadata_scale.py [--count 1000] [--rounds 2] [--from live|snapshot] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mactl.providers import metadata as metadata_provider
from mactl.providers.base import StageContext
from mactl.providers.metadata import MetadataProvider
from mactl.providers.snapshot import SnapshotProvider
from opensearchpy import OpenSearch

from mactl.metadata import target as tgt
from mactl.schema.metadata import MetadataInputs
from mactl.schema.snapshot import SnapshotInputs


def body_for(i: int) -> dict[str, Any]:
    """A distinct mapping per index: its own field names and a mix of types."""
    return {
        "settings": {"index.number_of_shards": 1, "index.number_of_replicas": 0},
        "mappings": {
            "properties": {
                f"name_{i}": {"type": "keyword"},
                f"count_{i}": {"type": "long"},
                f"text_{i}": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 64}}},
                "at": {"type": "date"},
                f"obj_{i % 17}": {"properties": {f"x_{i}": {"type": "double"}}},
            }
        },
    }


def _raise_shard_limit(client: OpenSearch, extra: int) -> None:
    health = client.cluster.health()
    limit = health["active_shards"] + health["unassigned_shards"] + extra + 500
    client.cluster.put_settings(body={"transient": {"cluster.max_shards_per_node": max(limit, 1000)}})


def _reset_shard_limit(client: OpenSearch) -> None:
    client.cluster.put_settings(body={"transient": {"cluster.max_shards_per_node": None}})


def _ctx(address: str, stage_type: str, inputs: Any, prior: dict[str, Any] | None = None) -> StageContext:
    return StageContext(
        address=address,
        type=stage_type,
        inputs=inputs,
        prior_outputs=prior,
        upstream={},
        checkpoint_data=None,
        workdir=Path("/tmp"),
    )


def _cleanup(
    source: OpenSearch, target: OpenSearch, names: list[str], prefix: str, repo_dir: Path, snapshot: bool
) -> None:
    """Best effort, step by step: one failing step (a cluster restarting) must not skip the others."""
    steps: list[tuple[str, Any]] = [
        ("target indices", lambda: tgt.delete_indices(target, names)),
        ("source indices", lambda: tgt.delete_indices(source, names)),
    ]
    if snapshot:
        steps += [
            ("snapshot", lambda: source.snapshot.delete(repository=f"{prefix}repo", snapshot=f"{prefix}snap")),
            ("repository", lambda: source.snapshot.delete_repository(repository=f"{prefix}repo")),
            ("repository files", lambda: shutil.rmtree(repo_dir, ignore_errors=True)),
        ]
    steps += [
        ("source shard limit", lambda: _reset_shard_limit(source)),
        ("target shard limit", lambda: _reset_shard_limit(target)),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - report and go on cleaning
            print(f"cleanup of {what} failed: {exc}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--from", dest="from_", choices=["live", "snapshot"], default="live")
    parser.add_argument("--workers", type=int, default=None, help="override the stage's index-creation threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    source_url = os.environ.get("MACTL_TEST_ES710_URL", "http://127.0.0.1:19200")
    target_url = os.environ.get("MACTL_TEST_OS2_URL", "http://127.0.0.1:29200")
    repo_root = Path(os.environ.get("MACTL_TEST_REPO_DIR", "/tmp/mactl-dev/repo"))
    if args.workers is not None:
        metadata_provider.INDEX_WORKERS = args.workers
    source = OpenSearch(source_url, timeout=300)
    target = OpenSearch(target_url, timeout=300)
    prefix = f"snapmeta-bench-{uuid.uuid4().hex[:6]}-"
    names = [f"{prefix}{i:04d}" for i in range(args.count)]
    repo_dir = repo_root / "snapmeta" / prefix.rstrip("-")
    results: dict[str, Any] = {
        "count": args.count,
        "from": args.from_,
        "workers": metadata_provider.INDEX_WORKERS,
        "plain_s": [],
        "stage_s": [],
        "rollback_s": [],
    }

    _raise_shard_limit(source, args.count)
    _raise_shard_limit(target, args.count)
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: source.indices.create(index=names[i], body=body_for(i)), range(args.count)))
        results["source_setup_s"] = round(time.perf_counter() - t0, 2)
        print(f"source: {args.count} indices created in {results['source_setup_s']}s", file=sys.stderr)

        snapshot_name = f"{prefix}snap"
        repository = {"type": "fs", "name": f"{prefix}repo", "location": str(repo_dir)}
        if args.from_ == "snapshot":
            repo_dir.mkdir(parents=True, exist_ok=True)
            repo_dir.chmod(0o777)
            repo_dir.parent.chmod(0o777)
            snap_inputs = SnapshotInputs.model_validate(
                {
                    "source": {"name": "es710", "endpoint": source_url},
                    "repository": repository,
                    "snapshotName": snapshot_name,
                    "indices": [{"names": [f"{prefix}*"]}],
                }
            )
            t0 = time.perf_counter()
            SnapshotProvider().apply(_ctx("snapshot.es710.bench", "snapshot", snap_inputs))
            results["snapshot_s"] = round(time.perf_counter() - t0, 2)

        inputs = MetadataInputs.model_validate(
            {
                "source": {"name": "es710", "endpoint": source_url},
                "target": {"name": "os2", "endpoint": target_url},
                "repository": repository,
                "snapshotName": snapshot_name,
                "from": args.from_,
                "indices": [{"names": [f"{prefix}*"]}],
                "templates": False,
            }
        )
        provider = MetadataProvider()
        for rnd in range(args.rounds):
            t0 = time.perf_counter()
            for i, name in enumerate(names):
                target.indices.create(index=name, body=body_for(i))
            plain = time.perf_counter() - t0
            tgt.delete_indices(target, names)

            t0 = time.perf_counter()
            outputs = provider.apply(_ctx("metadata.es710.bench.os2.m0", "metadata", inputs))
            stage = time.perf_counter() - t0
            assert len(outputs["created"]) == args.count, outputs["report"]["counts"]
            t0 = time.perf_counter()
            provider.rollback(_ctx("metadata.es710.bench.os2.m0", "metadata", inputs, prior=outputs))
            rollback = time.perf_counter() - t0
            results["plain_s"].append(round(plain, 2))
            results["stage_s"].append(round(stage, 2))
            results["rollback_s"].append(round(rollback, 2))
            print(
                f"round {rnd + 1}: plain loop {plain:.2f}s, metadata stage {stage:.2f}s (ratio {stage / plain:.2f}),"
                f" rollback {rollback:.2f}s",
                file=sys.stderr,
            )
    finally:
        _cleanup(source, target, names, prefix, repo_dir, args.from_ == "snapshot")

    results["ratio_median"] = round(
        statistics.median(s / p for s, p in zip(results["stage_s"], results["plain_s"], strict=True)), 3
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"{args.count} indices, metadata from {args.from_}: plain loop {results['plain_s']} s, "
            f"stage {results['stage_s']} s, rollback {results['rollback_s']} s; "
            f"median ratio stage/plain = {results['ratio_median']} (goal ≤ 1.5)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
