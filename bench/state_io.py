"""Benchmark: the state's I/O. Transitions through the journal at 1k and 12k stages, and
a whole state of 12,000 stages and 10,000 history entries written and read.

Transitions: an apply's recorder (`StateRecorder`, the real one) drives N instant stages
through `running` and `complete` (2·N transitions) on the real backend, under the lock,
then compacts. It reports the time and the bytes written per transition at 1k and at 12k:
a journal costs O(1) per transition, so the 12k/1k ratio of bytes per transition stays
near 1 (compaction adds a bounded, amortized share). The peer is the old way, a whole
document write per transition (`Backend.write`), whose bytes per transition grow with N;
it is run at 1k only (at 12k it would write ~100 GB). `--apply` also times the real CLI
applying 12,000 stand-in stages (`tests/engine/standin_main.py`: no network work).

Whole documents: the real backends (local folder, and S3 on moto's server when
MACTL_TEST_S3_URL is set) and, in the same run on the same data, a naive peer for each:
what the simplest code would do without any of the safety (no masking, no fsync, no
rename, no backups, no conditional request). Figures are reported as times and as ratios
to the peer, so they mean something on any machine. Not run by CI.

    python bench/state_io.py [--repeat 5] [--stages 12000] [--history 10000] [--apply]
    python bench/state_io.py --transitions-only [--apply]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from mactl.state import HistoryEntry, LocalStateConfig, S3StateConfig, StageRecord, StateDocument, open_backend
from mactl.state.backend import Backend

from mactl.apply.recorder import StateRecorder
from mactl.graph.stage import Stage


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


class WrittenBytes:
    """Bytes this process handed to the kernel (local files: /proc/self/io `wchar`) or to S3
    (the bodies of PUTs, counted on the backend's store), between two readings."""

    def __init__(self, backend: Backend) -> None:
        self.s3_bytes = 0
        store = getattr(backend, "store", None)
        if store is not None:
            real_call = store.call

            def counting_call(operation: str, key: str, **kwargs: object) -> object:
                body = kwargs.get("Body")
                if isinstance(body, bytes):
                    self.s3_bytes += len(body)
                return real_call(operation, key, **kwargs)

            store.call = counting_call
        self.local = store is None

    def now(self) -> int:
        if not self.local:
            return self.s3_bytes
        with open("/proc/self/io") as file:
            return next(int(line.split()[1]) for line in file if line.startswith("wchar:"))


def _stage(i: int) -> Stage:
    return Stage(
        address=f"backfill.source.snap1.target_{i % 3}.m{i}.b0",
        type="backfill",
        inputs={
            "index": f"logs-{i:05d}",
            "target": {"endpoint": "https://target:9200", "auth": {"type": "sigv4", "region": "us-east-1"}},
            "transforms": [{"kind": "jinja", "template": "{{ doc | tojson }}"}],
            "indices": [{"names": [f"logs-{i:05d}"], "mode": "include"}],
        },
        depends_on=(f"metadata.source.snap1.target_{i % 3}.m{i}",),
    )


def run_transitions(backend: Backend, stages: int, *, whole_documents: bool = False) -> tuple[float, int, int]:
    """Drive `stages` instant stages through running → complete; (seconds, bytes, transitions).

    `whole_documents` is the peer: the same changes, stored by a whole `write` each.
    """
    counter = WrittenBytes(backend)
    recorder = StateRecorder(backend, backend.read() or StateDocument(), "bench@host", [])
    before = counter.now()
    began = time.perf_counter()
    with backend.lock("apply", heartbeat_s=3600):
        if whole_documents:
            doc = recorder.doc
            for i in range(stages):
                stage = _stage(i)
                for status in ("running", "complete"):
                    doc.stages[stage.address] = StageRecord(type="backfill", inputs=stage.inputs, status=status)
                    doc.record(who="bench@host", operation="apply", address=stage.address, result=status)
                    doc = backend.write(doc)
        else:
            for i in range(stages):
                stage = _stage(i)
                recorder.running(stage, "create", "apply")
                recorder.complete(stage.address, stage.type, "create", {"documents": i}, "apply")
            recorder.compact()
    return time.perf_counter() - began, counter.now() - before, 2 * stages


def bench_transitions(open_fresh: Callable[[], Backend], label: str, sizes: tuple[int, int]) -> None:
    print(f"transitions, {label} (recorder: running + complete per stage, then compaction)", flush=True)
    rows = {}
    for stages in sizes:
        seconds, written, transitions = run_transitions(open_fresh(), stages)
        rows[stages] = (seconds / transitions, written / transitions)
        print(
            f"  {stages:>6} stages: {seconds:7.2f} s, {seconds / transitions * 1e6:8.0f} µs and "
            f"{written / transitions / 1e3:7.2f} kB written per transition ({written / 1e6:.1f} MB in all)",
            flush=True,
        )
    (t1, b1), (t12, b12) = rows[sizes[0]], rows[sizes[1]]
    print(f"  -> {sizes[1]}/{sizes[0]} per transition: time x{t12 / t1:.2f}, bytes x{b12 / b1:.2f}  (O(1): near 1)")
    seconds, written, transitions = run_transitions(open_fresh(), sizes[0], whole_documents=True)
    print(
        f"  peer, a whole document write per transition, {sizes[0]} stages: {seconds / transitions * 1e6:8.0f} µs and "
        f"{written / transitions / 1e3:7.2f} kB per transition: x{written / transitions / b1:.1f} the journal's bytes"
    )


def bench_apply(stages_per_target: int = 2000) -> None:
    """The real CLI applying 6·N + 8 stand-in stages (no network work), timed end to end."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from plan_scale import write_config

    main_py = Path(__file__).resolve().parent.parent / "tests" / "engine" / "standin_main.py"
    with tempfile.TemporaryDirectory(prefix="mactl-bench-apply-") as tmp:
        config = write_config(Path(tmp), stages_per_target)
        env = dict(os.environ, MACTL_WORKSPACE="default")
        began = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(main_py), "apply", "-auto-approve", "-refresh=false", "-c", str(config)],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.perf_counter() - began
        state = Path(tmp) / ".mactl" / "state.json"
        size = state.stat().st_size if state.exists() else 0
        tail = proc.stdout.strip().splitlines()[-1:] if proc.returncode == 0 else [proc.stderr[-300:]]
        print(
            f"apply of {6 * stages_per_target + 8} stand-in stages (real CLI, local state): {took:.1f} s wall, "
            f"exit {proc.returncode}, state.json {size / 1e6:.1f} MB: {' '.join(tail)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stages", type=int, default=12_000)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--transitions-only", action="store_true", help="skip the whole-document figures")
    parser.add_argument("--apply", action="store_true", help="also time the CLI applying 12,008 stand-in stages")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, repeat {args.repeat}")
    url = os.environ.get("MACTL_TEST_S3_URL")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        runs = iter(range(1_000_000))
        bench_transitions(
            lambda: open_backend(
                LocalStateConfig(path=str(Path(folder) / f"t{next(runs)}" / ".mactl")), base_dir=Path(folder)
            ),
            "local folder",
            (1000, 12000),
        )
    if url:
        with s3_bucket(url) as config_for:
            bench_transitions(
                lambda: open_backend(config_for(), base_dir=Path.cwd()), f"s3 on moto ({url})", (500, 2000)
            )
    else:
        print("transitions, s3: skipped (set MACTL_TEST_S3_URL to a moto server)")
    if args.apply:
        bench_apply()
    if args.transitions_only:
        return
    began = time.perf_counter()
    doc = build_state(args.stages, args.history)
    print(f"state: {args.stages} stages, {args.history} history entries (built in {time.perf_counter() - began:.2f} s)")
    bench_encoders(doc, args.repeat)
    bench_local(doc, args.repeat)
    if url:
        bench_s3(doc, args.repeat, url)
    else:
        print("s3: skipped (set MACTL_TEST_S3_URL to a moto server)")


@contextlib.contextmanager
def s3_bucket(url: str) -> Iterator[Callable[[], S3StateConfig]]:
    """A bucket of its own on moto; each call of the yielded function gives a fresh state key."""
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"mactl-state-bench-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    try:
        yield lambda: S3StateConfig(
            backend="s3", bucket=bucket, key=f"run-{uuid.uuid4().hex[:6]}/state.json", endpoint=url
        )
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)


if __name__ == "__main__":
    main()
