"""Replay timing fidelity: achieved speedup vs `maxSpeedupFactor`, achieved rate vs `maxThroughputMbps`.

Run by hand (not in CI), against the running OpenSearch 2.x target:

    python bench/replay_fidelity.py --target http://127.0.0.1:29200

Speedup: a file log of `--records` PUTs spread evenly over `--source-seconds` of source
time (on 4 connections) is replayed at each factor; achieved speedup = source span /
replay span (first to last send). Goal: within 5% of the factor.
Throughput: `_bulk` requests of `--body-kb` KiB, all stamped with the same source time
(so only the cap paces them), replayed with each cap; achieved rate = request bytes after the first /
time from first to last send. Goal: within 5% of the cap.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from mactl.capture import log as capture_log
from mactl.capture.record import Record, encode
from mactl.capture.replayer import Replayer, ReplayOptions


def _record(index: str, i: int, t: float, body: bytes, conns: int, latency: float = 0.001, bulk: bool = False) -> bytes:
    method, path, status = ("POST", f"/{index}/_bulk", 200) if bulk else ("PUT", f"/{index}/_doc/{i}", 201)
    return encode(
        Record(
            f"c{i % conns}",
            i // conns,
            t,
            t + latency,
            method,
            path,
            [("Content-Type", "application/x-ndjson" if bulk else "application/json")],
            body,
            status,
            [],
            b"{}",
            "bench",
        )
    )


def run_until_done(log_cfg: dict, target: str, n: int, **opts: float) -> Replayer:
    """Replay the whole log, stopping once all `n` records were answered."""
    replayer = Replayer(
        log_cfg,
        f"bench-{uuid.uuid4().hex[:6]}",
        ReplayOptions(target_url=target, max_lag_s=1e9, lag_window_s=1e9, **opts),
    )
    import threading

    def watch() -> None:
        while replayer.status.replayed < n and not replayer.stop.is_set():
            time.sleep(0.01)
        replayer.stop.set()

    threading.Thread(target=watch, daemon=True).start()
    replayer.run({}, until_in_sync=False, timeout_s=600)
    return replayer


def serve_sink(port: int) -> None:
    """A minimal HTTP/1.1 server answering every request 201 at once: a target that is
    never the bottleneck, so the figures measure the replayer's pacing alone."""
    import asyncio

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await r.readexactly(length)
                w.write(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="http://127.0.0.1:29200")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--records", type=int, default=400)
    ap.add_argument("--source-seconds", type=float, default=16.0)
    ap.add_argument("--factors", default="2,4,8")
    ap.add_argument("--caps", default="2,4")
    ap.add_argument("--body-kb", type=int, default=128)
    ap.add_argument("--cap-seconds", type=float, default=6.0, help="How long each throughput run should take.")
    ap.add_argument("--sink", action="store_true", help="Replay to a local instant-answer sink, not --target.")
    ap.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    sink = None
    if args.sink:
        import socket
        import subprocess

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        sink = subprocess.Popen([sys.executable, __file__, "--serve-sink", str(port)])
        args.target = f"http://127.0.0.1:{port}"
        time.sleep(1.0)
    index = f"cap-bench-replay-{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="cap-bench-replay-"))
    results: dict[str, object] = {"target": "local sink" if sink else args.target}
    results["speedup"], results["throughput"] = [], []
    try:
        t0 = time.time() - 3600
        step = args.source_seconds / (args.records - 1)
        for factor in (float(f) for f in args.factors.split(",")):
            # a fresh log and index per run, so no run overwrites another's documents
            log_cfg = {"type": "file", "path": str(work / f"speed{factor}"), "fsync": "never"}
            writer = capture_log.open_writer(log_cfg, "bench")
            for i in range(args.records):
                # each source request took 3.5 steps to answer: connections overlapped, as real clients do
                writer.append(
                    f"c{i % 4}",
                    _record(f"{index}-x{factor:g}", i, t0 + i * step, b'{"n":%d}' % i, 4, latency=step * 3.5),
                )
            writer.close()
            r = run_until_done(log_cfg, args.target, args.records, max_speedup=factor, workers=args.workers)
            span = (r.last_send or 0) - (r.first_send or 0)
            achieved = args.source_seconds / span
            results["speedup"].append(
                {
                    "factor": factor,
                    "replay_seconds": round(span, 3),
                    "achieved": round(achieved, 3),
                    "error_pct": round((achieved / factor - 1) * 100, 2),
                }
            )
        for cap in (float(c) for c in args.caps.split(",")):
            cfg = {"type": "file", "path": str(work / f"cap{cap}"), "fsync": "never"}
            # bulk requests, as high-volume clients send: --body-kb of NDJSON, 2 KiB documents
            docs = max(1, args.body_kb // 2)
            body = "".join('{"index":{}}\n' + json.dumps({"pad": "x" * 2000}) + "\n" for _ in range(docs)).encode()
            n = max(10, int(cap * 1e6 / 8 * args.cap_seconds / (len(body) + 100)))
            writer = capture_log.open_writer(cfg, "bench")
            for i in range(n):
                writer.append(f"c{i % 4}", _record(f"{index}-cap{cap:g}", i, t0, body, 4, bulk=True))
            writer.close()
            r = run_until_done(cfg, args.target, n, max_speedup=1e6, max_throughput_mbps=cap, workers=args.workers)
            span = (r.last_send or 0) - (r.first_send or 0)
            per_request = r.status.bytes_sent / n
            achieved = (r.status.bytes_sent - per_request) * 8 / 1e6 / span
            results["throughput"].append(
                {
                    "cap_mbps": cap,
                    "requests": n,
                    "bytes": r.status.bytes_sent,
                    "seconds": round(span, 3),
                    "achieved_mbps": round(achieved, 3),
                    "error_pct": round((achieved / cap - 1) * 100, 2),
                }
            )
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()
        try:
            urllib.request.urlopen(urllib.request.Request(f"{args.target}/{index}-*", method="DELETE"), timeout=30)
        except (OSError, ValueError):
            pass
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for s in results["speedup"]:
            print(
                f"speedup x{s['factor']:<5} replay {s['replay_seconds']:7.3f}s  achieved x{s['achieved']:.3f}  "
                f"error {s['error_pct']:+.2f}%"
            )
        for t in results["throughput"]:
            print(
                f"cap {t['cap_mbps']:5.1f} Mbps  {t['requests']} requests in {t['seconds']:.3f}s  "
                f"achieved {t['achieved_mbps']:.3f} Mbps  error {t['error_pct']:+.2f}%"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
