"""Benchmark: the replay stage's replayers as a Kubernetes Job against the local replayer.

    eval "$(scripts/clusters env)"; eval "$(scripts/kube env)"
    python bench/kube_replay.py [--records 400] [--docs-per-record 50] [--partitions 8] [--replicas 1,2,4]

Each row writes `--records` `_bulk` requests of `--docs-per-record` ~500-byte documents into a
fresh Kafka topic of `--partitions` partitions, keyed by 16 client connections, exactly as the
capture proxy stores them, all stamped with one source time (so neither the speed factor nor
causality paces them), then runs the replay stage until its exit criteria hold:

  (local)   the replayer inside apply (assigned every partition, 4 sender threads);
  (kube N)  executor kubernetes with replicas = N: a Job on the `scripts/kube` control plane,
            whose pods are local processes on its node (so the same machine's cores).

It prints documents per second for each row, counted from the target (the index holds every
document), over the time from apply's start until in sync minus `lagWindowSeconds`, and kube/local:
on one machine this is the cost of pod start-up and of judging through Kafka and the status
index rather than in-process; on a cluster each pod brings its own cores. Named `kreplay-bench-*`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from mactl.providers.base import StageContext
from mactl.providers.replay import ReplayProvider
from opensearchpy import OpenSearch

from mactl.capture import log as capture_log
from mactl.capture.record import Record, encode
from mactl.schema.replay import ReplayInputs

WINDOW_S = 1.0


def _fill(log: dict[str, Any], index: str, records: int, per_record: int) -> int:
    writer = capture_log.open_writer(log, "bench")
    t = time.time() - 5
    futures = []
    for i in range(records):
        lines = []
        for d in range(per_record):
            lines.append(orjson.dumps({"index": {"_index": index, "_id": f"{i}-{d}"}}))
            lines.append(orjson.dumps({"n": i * per_record + d, "text": "x" * 480}))
        body = b"\n".join(lines) + b"\n"
        conn = f"c{i % 16}"
        rec = Record(conn, i // 16, t, t + 0.001, "POST", "/_bulk", [("Content-Type", "application/x-ndjson")],
                     body, 200, [], b'{"errors":false}', "bench")  # fmt: skip
        futures.append(writer.submit(conn, encode(rec)))
    for f in futures:
        f.result(60)
    writer.close()
    return records * per_record


def _row(args: argparse.Namespace, replicas: int | None, work: Path) -> tuple[float, int]:
    uid = uuid.uuid4().hex[:6]
    index = f"kreplay-bench-{uid}"
    log = {"type": "kafka", "bootstrapServers": args.kafka, "topic": index, "partitions": args.partitions}
    capture_log.init_log(log)
    target = OpenSearch(args.target, timeout=120)
    target.indices.create(index=index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    docs = _fill(log, index, args.records, args.docs_per_record)
    raw: dict[str, Any] = {
        "source": {"name": "bench", "endpoint": "http://source:9200"},
        "target": {"name": "target", "endpoint": args.target},
        "log": log,
        "maxLagSeconds": 2.0,
        "lagWindowSeconds": WINDOW_S,
        "timeoutSeconds": 600,
    }
    if replicas is not None:
        raw["executor"] = {
            "type": "kubernetes",
            "image": "mactl:bench",
            "replicas": replicas,
            "kubeconfig": args.kubeconfig,
        }
    address = f"replay.bench{uid}.target"
    ctx: StageContext[ReplayInputs] = StageContext(
        address=address,
        type="replay",
        inputs=ReplayInputs.model_validate(raw),
        prior_outputs=None,
        upstream={},
        checkpoint_data=None,
        workdir=work / address,
        progress=lambda _p: None,
        checkpoint=lambda _d: None,
        log=lambda _m: None,
    )
    started = time.monotonic()
    ReplayProvider().apply(ctx)
    took = time.monotonic() - started - WINDOW_S
    target.indices.refresh(index=index)
    landed = int(target.count(index=index)["count"])
    target.indices.delete(index=index)
    capture_log.delete_log(log)
    if landed != docs:
        sys.exit(f"{'local' if replicas is None else f'kube {replicas}'}: {landed} of {docs} documents on the target")
    return took, docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--docs-per-record", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--target", default=os.environ.get("MACTL_TEST_OS2_URL", "http://127.0.0.1:29200"))
    parser.add_argument("--kafka", default=os.environ.get("MACTL_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--kubeconfig", default=os.environ.get("MACTL_TEST_KUBECONFIG"))
    args = parser.parse_args()
    if not args.kubeconfig:
        sys.exit('no kubeconfig: eval "$(scripts/kube env)" first')
    work = Path(f"/tmp/kreplay-bench-{uuid.uuid4().hex[:6]}")
    took, docs = _row(args, None, work)
    local = docs / took
    print(f"{'row':<10}{'seconds':>9}{'docs/s':>10}{'vs local':>10}")
    print(f"{'local':<10}{took:>9.1f}{local:>10.0f}{1.0:>10.2f}")
    for n in (int(r) for r in args.replicas.split(",")):
        took, docs = _row(args, n, work)
        print(f"{f'kube {n}':<10}{took:>9.1f}{docs / took:>10.0f}{docs / took / local:>10.2f}")


if __name__ == "__main__":
    main()
