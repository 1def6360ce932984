"""Benchmark: write and read a state of 12,000 stages and 10,000 history entries.

Runs the real backends (local folder, and S3 on moto's server when MACTL_TEST_S3_URL is
set) and, in the same run on the same data, a naive peer for each: what the simplest
code would do without any of the safety (no masking, no fsync, no rename, no backups,
no conditional request). Figures are reported as times and as ratios to the peer, so
they mean something on any machine. Not run by CI.

    python bench/state_io.py [--repeat 5] [--stages 12000] [--history 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from mactl.state import HistoryEntry, LocalStateConfig, S3StateConfig, StageRecord, StateDocument, open_backend


def build_state(stages: int, history: int) -> StateDocument:
    """A state shaped like a big real one: backfill stages with nested inputs and outputs."""
    doc = StateDocument()
    for i in range(stages):
        doc.stages[f"backfill.source.snap1.target_{i % 3}.m{i % 50}.b{i}"] = StageRecord(
            type="backfill",
            inputs={
                "index": f"logs-2026.{i % 365:03d}",
                "source": {
                    "endpoint": "https://source:9200",
                    "auth": {"type": "basic", "username": "u", "password": "(sensitive)"},
                },
                "target": {"endpoint": "https://target:9200", "auth": {"type": "sigv4", "region": "us-east-1"}},
                "transforms": [{"kind": "jinja", "template": "{{ doc | tojson }}"}],
                "batchSize": 1000,
                "filter": {"names": ["logs-*"], "mode": "include"},
            },
            inputs_digest=f"sha256:{i:064x}",
            outputs={"documents": i * 1000, "bytes": i * 250_000, "shards": [0, 1, 2, 3, 4]},
            status="complete",
            created_at="2026-11-24T20:00:00.000+00:00",
            updated_at="2026-11-24T21:00:00.000+00:00",
            started_at="2026-11-24T20:00:01.000+00:00",
            finished_at="2026-11-24T20:59:59.000+00:00",
            attempts=1,
            depends_on=[f"metadata.source.snap1.target_{i % 3}.m{i % 50}"],
        )
    doc.history = [
        HistoryEntry(
            who="ann@host", operation="apply", address=f"backfill.b{i}", result="ok", detail="12000 docs", serial=i
        )
        for i in range(history)
    ]
    return doc


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def row(label: str, times: list[float], peer: list[float] | None = None) -> str:
    med = statistics.median(times)
    text = f"  {label:<50} median {med * 1000:8.1f} ms  (min {min(times) * 1000:7.1f}, max {max(times) * 1000:7.1f})"
    if peer:
        text += f"   x{med / statistics.median(peer):.2f} of peer"
    return text


def bench_local(doc: StateDocument, repeat: int) -> None:
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        backend = open_backend(LocalStateConfig(path=str(Path(folder) / ".mactl")), base_dir=Path(folder))
        state = {"doc": backend.write(doc)}

        def write() -> None:  # the engine's pattern: one more history entry, then a conditional write
            current = state["doc"]
            current.record(who="bench@host", operation="apply", result="ok")
            state["doc"] = backend.write(current)

        peer_file = Path(folder) / "peer.json"

        def peer_write() -> None:
            peer_file.write_bytes(orjson.dumps(doc.model_dump()))

        def plain_same_bytes() -> None:
            (Path(folder) / "plain.json").write_bytes(doc.model_dump_json().encode())

        writes = timed(write, repeat)
        peer_writes = timed(peer_write, repeat)
        plain_writes = timed(plain_same_bytes, repeat)
        size = backend.path.stat().st_size
        reads = timed(
            lambda: open_backend(LocalStateConfig(path=str(Path(folder) / ".mactl")), base_dir=Path(folder)).read(),
            repeat,
        )
        peer_reads = timed(lambda: StateDocument.model_validate(orjson.loads(peer_file.read_bytes())), repeat)

        print(
            f"local ({backend.describe()}), state file {size / 1e6:.2f} MB, {len(list(backend.versions()))} backups kept"
        )
        print(row("write (mask, encode, fsync, rename, backup)", writes, peer_writes))
        print(row("peer: write_bytes(orjson.dumps(model_dump()))", peer_writes))
        print(row("plain write_bytes(model_dump_json())", plain_writes))
        print(
            f"  -> cost of the safety (mask, fsync, rename, backup): x{statistics.median(writes) / statistics.median(plain_writes):.2f}"
        )
        print(row("read (parse and validate)", reads, peer_reads))
        print(row("peer: model_validate(orjson.loads(...))", peer_reads))


def bench_s3(doc: StateDocument, repeat: int, url: str) -> None:
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"mactl-state-bench-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    config = S3StateConfig(backend="s3", bucket=bucket, key="mactl/state.json", endpoint=url)
    try:
        with tempfile.TemporaryDirectory() as folder:
            backend = open_backend(config, base_dir=Path(folder))
            state = {"doc": backend.write(doc)}

            def write() -> None:
                current = state["doc"]
                current.record(who="bench@host", operation="apply", result="ok")
                state["doc"] = backend.write(current)

            body = doc.model_dump_json().encode()
            writes = timed(write, repeat)
            peer_writes = timed(lambda: client.put_object(Bucket=bucket, Key="peer.json", Body=body), repeat)
            reads = timed(lambda: open_backend(config, base_dir=Path(folder)).read(), repeat)
            peer_reads = timed(
                lambda: StateDocument.model_validate_json(
                    client.get_object(Bucket=bucket, Key="peer.json")["Body"].read()
                ),
                repeat,
            )
            print(f"s3 on moto ({url}), object {len(body) / 1e6:.2f} MB")
            print(row("write (conditional PUT, HEAD check, backup)", writes, peer_writes))
            print(row("peer: plain put_object of the same bytes", peer_writes))
            print(row("read (GET, parse and validate)", reads, peer_reads))
            print(row("peer: get_object + model_validate_json", peer_reads))
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)


def bench_encoders(doc: StateDocument, repeat: int) -> None:
    """Why `encode_document` uses pydantic's own serializer rather than orjson."""
    pyd = timed(lambda: doc.model_dump_json(), repeat)
    orj = timed(lambda: orjson.dumps(doc.model_dump()), repeat)
    orj_json = timed(lambda: orjson.dumps(doc.model_dump(mode="json")), repeat)
    data = doc.model_dump_json().encode()
    val_json = timed(lambda: StateDocument.model_validate_json(data), repeat)
    val_orj = timed(lambda: StateDocument.model_validate(orjson.loads(data)), repeat)
    print("encoders (same document, in memory)")
    print(row("model_dump_json() [used]", pyd, orj))
    print(row("orjson.dumps(model_dump())", orj))
    print(row("orjson.dumps(model_dump(mode='json'))", orj_json, orj))
    print(row("model_validate_json(bytes) [used]", val_json, val_orj))
    print(row("model_validate(orjson.loads(bytes))", val_orj))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stages", type=int, default=12_000)
    parser.add_argument("--history", type=int, default=10_000)
    args = parser.parse_args()
    began = time.perf_counter()
    doc = build_state(args.stages, args.history)
    print(f"state: {args.stages} stages, {args.history} history entries (built in {time.perf_counter() - began:.2f} s)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, repeat {args.repeat}")
    bench_encoders(doc, args.repeat)
    bench_local(doc, args.repeat)
    url = os.environ.get("MACTL_TEST_S3_URL")
    if url:
        bench_s3(doc, args.repeat, url)
    else:
        print("s3: skipped (set MACTL_TEST_S3_URL to a moto server)")


if __name__ == "__main__":
    main()
