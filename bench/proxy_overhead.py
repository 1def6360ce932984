"""Capture-proxy overhead: client throughput through the proxy vs straight to the source.

Run by hand (not in CI), against the running ES 7.10.2 (`scripts/clusters up es710`):

    python bench/proxy_overhead.py --source http://127.0.0.1:19200 --duration 8

What runs, all in one run on this machine, over loopback:
- the source, directly;
- a real `mactl capture-proxy` process in front of it (capturing to a file log,
  fsync=interval, the default);
- the peer: HAProxy (Debian package `haproxy`) in front of the same source, as a plain
  HTTP reverse proxy that records nothing. It shows what a mature proxy written in C costs
  on the same machine, so the figures separate "any proxy" from "mactl's proxy".

`wrk` (Debian package) drives each, alternating, `--rounds` times; each figure is a median.
Two workloads: `read` (GET by id) and `mixed` (80% GET, 20% PUT by id; the PUTs are the
captured requests).

Two CPU topologies, because the ratio means different things in each:
- `shared`: source, proxy and load tool share every core. On a small machine this mostly
  measures how much CPU the proxy takes away from the source, since the proxy runs on the
  source's own cores.
- `isolated`: the source is pinned to the last core; the load tool and the proxy share the
  others. The source has the same CPU in the direct and proxied runs, as when proxies run
  on their own hosts, so the ratio is the throughput the proxy costs the clients.

Also reported: the proxy process's own CPU time per request (from /proc, user+system, so
kernel socket work counts), and the latency it adds at low load (one connection,
sequential requests): p50/p99 through the proxy minus p50/p99 direct.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
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

HAPROXY_CFG = """
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  http-reuse always
  server source {host}:{source_port}
"""

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _req(url: str, method: str = "GET", body: bytes | None = None) -> bytes:
    r = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(r, timeout=60) as resp:
        return resp.read()


def _listening_pid(port: int) -> int:
    """The process listening on `port` (the source's JVM), from `ss`."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"pid=(\d+)", out)
    if not m:
        raise SystemExit(f"no process found listening on port {port} (is the source running here?)")
    return int(m.group(1))


def _pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of `pid` (a JVM has dozens) to `cpus`."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, PermissionError):
            pass


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _wrk(
    url: str, script: Path, duration: int, connections: int, cpus: set[int], proxy_pid: int | None
) -> dict[str, float]:
    cpu0 = _cpu_seconds(proxy_pid) if proxy_pid else 0.0
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    ).stdout
    cpu1 = _cpu_seconds(proxy_pid) if proxy_pid else 0.0
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }
    if proxy_pid:
        result["proxy_cpu_us_per_request"] = (cpu1 - cpu0) * 1e6 / max(requests, 1)
    return result


def _sequential_latency(url: str, index: str, n: int, write_every: int) -> list[float]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    times = []
    for i in range(n):
        doc = i % 1000
        started = time.perf_counter()
        if write_every and i % write_every == 0:
            conn.request(
                "PUT", f"/{index}/_doc/{doc}", body=b'{"n":%d}' % i, headers={"content-type": "application/json"}
            )
        else:
            conn.request("GET", f"/{index}/_doc/{doc}")
        conn.getresponse().read()
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return times


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def _wait_up(url: str) -> None:
    for _ in range(100):
        try:
            _req(url)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="http://127.0.0.1:19200")
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-requests", type=int, default=2000)
    ap.add_argument("--topology", choices=["shared", "isolated", "both"], default="both")
    ap.add_argument("--no-peer", action="store_true", help="Skip HAProxy even if it is installed.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    use_peer = not args.no_peer and shutil.which("haproxy") is not None
    if not args.no_peer and not use_peer:
        print("haproxy is not installed (apt-get install -y haproxy): measuring without the peer", file=sys.stderr)
    all_cpus = set(os.sched_getaffinity(0))
    if args.topology != "shared" and len(all_cpus) < 2:
        print("the isolated topology needs at least 2 CPUs", file=sys.stderr)
        return 2
    source = urlsplit(args.source)
    source_pid = _listening_pid(source.port or 80)
    index = f"cap-bench-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="cap-bench-"))
    _req(f"{args.source}/{index}", "PUT", b'{"settings":{"number_of_shards":1,"number_of_replicas":0}}')
    bulk = "".join(f'{{"index":{{"_id":"{i}"}}}}\n{{"n":{i}}}\n' for i in range(1000)).encode()
    r = urllib.request.Request(
        f"{args.source}/{index}/_bulk?refresh=true",
        data=bulk,
        method="POST",
        headers={"content-type": "application/x-ndjson"},
    )
    urllib.request.urlopen(r, timeout=60).read()

    mactl_port = _free_port()
    mactl = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mactl",
            "capture-proxy",
            "--source",
            args.source,
            "--listen",
            f"127.0.0.1:{mactl_port}",
            "--log",
            str(work / "log"),
            "--capture",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxies: dict[str, tuple[str, subprocess.Popen[bytes]]] = {"mactl": (f"http://127.0.0.1:{mactl_port}", mactl)}
    if use_peer:
        peer_port = _free_port()
        cfg = work / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(port=peer_port, host=source.hostname, source_port=source.port))
        peer = subprocess.Popen(["haproxy", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxies["haproxy"] = (f"http://127.0.0.1:{peer_port}", peer)
    topologies = ["shared", "isolated"] if args.topology == "both" else [args.topology]
    results: dict[str, object] = {
        "connections": args.connections,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpus": len(all_cpus),
        "peer": "haproxy" if use_peer else None,
    }
    try:
        _wait_up(f"{proxies['mactl'][0]}/__mactl/health")
        if use_peer:
            _wait_up(f"{proxies['haproxy'][0]}/")
        for topology in topologies:
            if topology == "shared":
                source_cpus = load_cpus = all_cpus
            else:
                source_cpus = {max(all_cpus)}
                load_cpus = all_cpus - source_cpus
            _pin(source_pid, source_cpus)
            for _, proc in proxies.values():
                _pin(proc.pid, load_cpus)
            time.sleep(1)
            per_topology: dict[str, object] = {
                "source_cpus": sorted(source_cpus),
                "load_and_proxy_cpus": sorted(load_cpus),
            }
            for name, write_every in (("read", 0), ("mixed", 5)):
                script = work / f"{name}.lua"
                script.write_text(LUA.replace("INDEX", index).replace("WRITE_EVERY", str(write_every)))
                runs: dict[str, list[dict[str, float]]] = {"direct": [], **{p: [] for p in proxies}}
                for _ in range(args.rounds):
                    runs["direct"].append(_wrk(args.source, script, args.duration, args.connections, load_cpus, None))
                    for p, (url, proc) in proxies.items():
                        runs[p].append(_wrk(url, script, args.duration, args.connections, load_cpus, proc.pid))
                direct_rps = statistics.median(x["rps"] for x in runs["direct"])
                entry: dict[str, object] = {"direct_rps": round(direct_rps, 1)}
                for p in proxies:
                    rps = statistics.median(x["rps"] for x in runs[p])
                    entry[p] = {
                        "rps": round(rps, 1),
                        "ratio_to_direct": round(rps / direct_rps, 3),
                        "cpu_us_per_request": round(
                            statistics.median(x["proxy_cpu_us_per_request"] for x in runs[p]), 1
                        ),
                        "non_2xx": sum(int(x["non_2xx"]) for x in runs[p]),
                    }
                if topology == topologies[0]:
                    seq_direct = _sequential_latency(args.source, index, args.latency_requests, write_every)
                    seq_mactl = _sequential_latency(proxies["mactl"][0], index, args.latency_requests, write_every)
                    entry["added_latency_ms_1conn"] = {
                        "p50": round(_pct(seq_mactl, 50) - _pct(seq_direct, 50), 3),
                        "p99": round(_pct(seq_mactl, 99) - _pct(seq_direct, 99), 3),
                        "direct_p50": round(_pct(seq_direct, 50), 3),
                        "direct_p99": round(_pct(seq_direct, 99), 3),
                    }
                per_topology[name] = entry
            results[topology] = per_topology
        results["records_captured"] = json.loads(_req(f"{proxies['mactl'][0]}/__mactl/health"))["recordsWritten"]
    finally:
        _pin(source_pid, all_cpus)
        for _, proc in proxies.values():
            proc.terminate()
            proc.wait(10)
        _req(f"{args.source}/{index}", "DELETE")
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for topology in topologies:
        t = results[topology]
        print(f"{topology}: source on CPUs {t['source_cpus']}, load tool and proxies on {t['load_and_proxy_cpus']}")
        for name in ("read", "mixed"):
            e = t[name]
            line = f"  {name:5s} direct {e['direct_rps']:8.0f}/s"
            for p in proxies:
                line += f" | {p} {e[p]['rps']:8.0f}/s = {e[p]['ratio_to_direct']:.2f}x, {e[p]['cpu_us_per_request']:.1f} us CPU/req"
            print(line)
            if "added_latency_ms_1conn" in e:
                lat = e["added_latency_ms_1conn"]
                print(
                    f"        mactl adds p50 {lat['p50']:+.3f} ms, p99 {lat['p99']:+.3f} ms (1 connection; direct p50 {lat['direct_p50']:.3f} ms)"
                )
    print(f"records captured by mactl: {results['records_captured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
