"""Benchmark: the replayer's cross-connection ordering on a log with several partitions.

    eval "$(scripts/clusters env)"
    python bench/replay_causality.py [--records 2000] [--partitions 8] [--workers 4] [--spacing-ms 1]

Writes `--records` single-document writes from 16 client connections into two fresh Kafka
topics, with source times `--spacing-ms` apart in one global order (as a busy source answers
them): one topic of `--partitions` partitions (each connection's records in one partition, so
a consumer hands them out partition by partition, out of time order) and, as the peer, a
topic of one partition (records in time order). Each is replayed into OpenSearch by the local
replayer with `--workers` sender threads at up to 1000× the source's pace until every record
is replayed, and the row prints the wall time, the cross-connection waits that ran into their
timeout (`causalityWaitTimeouts`) and, for the multi-partition row, its time against the peer.
Every document must be on the target. Names: `causality-bench-*`.

Last runs here (2026-12-05, 1,000 requests, 4 workers, peer 0.9-1.6 s, no timeouts):
- 8 partitions as the consumer hands them out: 373-379 s, 716-748 timeouts, 137-430x the
  peer (a worker no longer waiting for its own queued requests did not change that);
- merged by source time (`mactl.capture.time_order`), with the end offsets asked before
  reading and learnt while reading (a Kafka query waits ~0.5 s a partition behind the
  consumer's long-polling fetch): 1.25 s, no timeouts, 1.15x the peer.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import OpenSearch

from mactl.capture import log as capture_log
from mactl.capture.record import Record, encode
from mactl.capture.replayer import Replayer, ReplayOptions


def _fill(log: dict[str, Any], index: str, records: int, spacing_s: float) -> None:
    writer = capture_log.open_writer(log, "bench")
    start = time.time() - records * spacing_s - 5
    futures = []
    for i in range(records):
        t = start + i * spacing_s
        conn = f"c{i % 16}"
        body = orjson.dumps({"n": i, "text": "x" * 200})
        rec = Record(conn, i // 16, t, t + spacing_s / 2, "PUT", f"/{index}/_doc/{i}",
                     [("Content-Type", "application/json")], body, 201, [], b'{"result":"created"}', "bench")  # fmt: skip
        futures.append(writer.submit(conn, encode(rec)))
    for f in futures:
        f.result(60)
    writer.close()


def _row(args: argparse.Namespace, partitions: int, work: Path) -> tuple[float, int]:
    index = f"causality-bench-{uuid.uuid4().hex[:6]}"
    log = {"type": "kafka", "bootstrapServers": args.kafka, "topic": index, "partitions": partitions}
    capture_log.init_log(log)
    target = OpenSearch(args.target, timeout=120)
    target.indices.create(index=index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    try:
        _fill(log, index, args.records, args.spacing_ms / 1000)
        options = ReplayOptions(
            target_url=args.target,
            tuples_path=work / f"{index}.tuples",
            deadletter_path=work / f"{index}.dead",
            max_speedup=1000,
            workers=args.workers,
        )
        replayer = Replayer(log, f"{index}-group", options)
        started = time.monotonic()
        status = replayer.run({}, until_in_sync=False, until_caught_up=True, timeout_s=600)
        took = time.monotonic() - started
        target.indices.refresh(index=index)
        landed = int(target.count(index=index)["count"])
        if landed != args.records:
            sys.exit(f"{partitions} partitions: {landed} of {args.records} documents on the target")
        return took, status.causality_timeouts
    finally:
        target.indices.delete(index=index, ignore_unavailable=True)
        capture_log.delete_log(log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--spacing-ms", type=float, default=1.0)
    parser.add_argument("--target", default=os.environ.get("MACTL_TEST_OS2_URL", "http://127.0.0.1:29200"))
    parser.add_argument("--kafka", default=os.environ.get("MACTL_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="causality-bench-") as folder:
        work = Path(folder)
        peer, peer_timeouts = _row(args, 1, work)
        print(f"1 partition (peer):  {peer:7.2f} s  {args.records / peer:8.0f} req/s  timeouts {peer_timeouts}")
        took, timeouts = _row(args, args.partitions, work)
        print(
            f"{args.partitions} partitions:        {took:7.2f} s  {args.records / took:8.0f} req/s  "
            f"timeouts {timeouts}  ({took / peer:.2f}× the peer)"
        )


if __name__ == "__main__":
    main()
