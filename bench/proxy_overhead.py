"""Capture-proxy overhead: client throughput through the proxy vs straight to the source.

Run by hand (not in CI), against the running ES 7.10.2:

    python bench/proxy_overhead.py --source http://127.0.0.1:19200 --duration 10

A real `mactl capture-proxy` process (capturing, file log, fsync=interval) is started in
front of the source. `wrk` (Debian package) drives the same workload at the source
and at the proxy, alternating, `--rounds` times each, over loopback; the ratio of the
medians is the figure (goal >= 0.8). Added latency is measured separately at low load
(one connection, sequential requests) so queueing under saturation does not hide it:
p50/p99 through the proxy minus p50/p99 direct. Workloads: `read` (GET by id) and
`mixed` (80% GET, 20% PUT by id, the PUTs recorded to the capture log).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

LUA = """
counter = 0
request = function()
  counter = counter + 1
  local id = math.random(0, 999)
  if WRITE_EVERY > 0 and counter % WRITE_EVERY == 0 then
    return wrk.format("PUT", "/INDEX/_doc/" .. id, {["Content-Type"]="application/json"},
                      '{"n":' .. counter .. ',"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}')
  end
  return wrk.format("GET", "/INDEX/_doc/" .. id)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _req(url: str, method: str = "GET", body: bytes | None = None) -> bytes:
    r = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(r, timeout=60) as resp:
        return resp.read()


def _wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        lat[pct] = value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"]}


def _sequential_latency(url: str, index: str, n: int, write_every: int) -> list[float]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    times = []
    for i in range(n):
        doc = i % 1000
        started = time.perf_counter()
        if write_every and i % write_every == 0:
            conn.request("PUT", f"/{index}/_doc/{doc}", body=b'{"n":%d}' % i, headers={"content-type": "application/json"})
        else:
            conn.request("GET", f"/{index}/_doc/{doc}")
        conn.getresponse().read()
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return times


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="http://127.0.0.1:19200")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--latency-requests", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    index = f"cap-bench-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="cap-bench-"))
    port = _free_port()
    proxy_url = f"http://127.0.0.1:{port}"
    _req(f"{args.source}/{index}", "PUT", b'{"settings":{"number_of_shards":1,"number_of_replicas":0}}')
    bulk = "".join(f'{{"index":{{"_id":"{i}"}}}}\n{{"n":{i}}}\n' for i in range(1000)).encode()
    r = urllib.request.Request(f"{args.source}/{index}/_bulk?refresh=true", data=bulk, method="POST",
                               headers={"content-type": "application/x-ndjson"})
    urllib.request.urlopen(r, timeout=60).read()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "mactl", "capture-proxy", "--source", args.source, "--listen", f"127.0.0.1:{port}",
         "--log", str(work / "log"), "--capture"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    results: dict[str, object] = {"connections": args.connections, "duration_s": args.duration, "rounds": args.rounds}
    try:
        for _ in range(100):
            try:
                _req(f"{proxy_url}/__mactl/health")
                break
            except OSError:
                time.sleep(0.1)
        for name, write_every in (("read", 0), ("mixed", 5)):
            script = work / f"{name}.lua"
            script.write_text(LUA.replace("INDEX", index).replace("WRITE_EVERY", str(write_every)))
            direct, proxied = [], []
            for _ in range(args.rounds):
                direct.append(_wrk(args.source, script, args.duration, args.connections))
                proxied.append(_wrk(proxy_url, script, args.duration, args.connections))
            d_rps = statistics.median(x["rps"] for x in direct)
            p_rps = statistics.median(x["rps"] for x in proxied)
            seq_direct = _sequential_latency(args.source, index, args.latency_requests, write_every)
            seq_proxy = _sequential_latency(proxy_url, index, args.latency_requests, write_every)
            results[name] = {
                "direct_rps": round(d_rps, 1),
                "proxy_rps": round(p_rps, 1),
                "throughput_ratio": round(p_rps / d_rps, 3),
                "saturated_p50_ms": {"direct": statistics.median(x["p50_ms"] for x in direct),
                                     "proxy": statistics.median(x["p50_ms"] for x in proxied)},
                "saturated_p99_ms": {"direct": statistics.median(x["p99_ms"] for x in direct),
                                     "proxy": statistics.median(x["p99_ms"] for x in proxied)},
                "added_latency_ms_1conn": {
                    "p50": round(_pct(seq_proxy, 50) - _pct(seq_direct, 50), 3),
                    "p99": round(_pct(seq_proxy, 99) - _pct(seq_direct, 99), 3),
                    "direct_p50": round(_pct(seq_direct, 50), 3),
                    "direct_p99": round(_pct(seq_direct, 99), 3),
                },
            }
        health = json.loads(_req(f"{proxy_url}/__mactl/health"))
        results["records_captured"] = health["recordsWritten"]
    finally:
        proxy.terminate()
        proxy.wait(10)
        _req(f"{args.source}/{index}", "DELETE")
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name in ("read", "mixed"):
            r = results[name]
            print(f"{name:6s} direct {r['direct_rps']:8.1f} req/s  proxy {r['proxy_rps']:8.1f} req/s  "
                  f"ratio {r['throughput_ratio']:.3f}  added latency (1 conn) p50 {r['added_latency_ms_1conn']['p50']:.3f} ms "
                  f"p99 {r['added_latency_ms_1conn']['p99']:.3f} ms")
        print(f"records captured: {results['records_captured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
