"""How `mactl plan -refresh=false` scales: 1k, 3k and 12k stages, text and JSON output.

Writes a config (the `targets` list shape) with N indices, each migrated by its own
metadata and backfill entry, to 3 targets: 6·N + 8 stages (N = 2,000 gives 12,008), in
two shapes: `bench` (no snapshot-level filter) and `seed`, the seed's own shape, where
the snapshot entry's `indices.names` lists all N indices (comma-separated, as the seed
writes it), so every metadata and backfill stage also carries that N-name parent filter.
For each size it times, in-process, the whole `plan` path (load the config, expand the
graph, build the plan against an empty state, render) with each output: `text` (what
`mactl plan` prints), `json` (what `mactl plan --json` writes: the event stream) and `doc`
(the plan document `mactl show -json PLANFILE` writes), and reports each phase. Then it
runs the real CLI as a subprocess at the largest size, text and `--json`, with its peak
RSS. Figures are reported as ratios too: against the 1k run (linear growth means time
per stage stays flat) and against a peer on the same machine: in-process, the same run's
bare `orjson.dumps` of every stage's inputs (the least any planner that looks at every
input must do); for the CLI, `mactl version` run the same way (what every command pays
to start). The machine is shared: run it a few times and take the median.

    python bench/plan_scale.py            # 1k, 3k, 12k
    python bench/plan_scale.py --profile  # also cProfile the 12k text plan (seed shape)
    python bench/plan_scale.py --shape seed --sizes 12k  # one shape, one size

Goal (issue 20): the seed shape at 12k plans in <= 2 s and < 500 MB peak RSS (the CLI
subprocess rows), and µs/stage at 12k within 1.3x of 1k.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

SIZES = {"1k": 166, "3k": 500, "12k": 2000}  # indices → 6·N + 8 stages
TARGETS = 3
# text: `mactl plan`; json: `mactl plan --json` (events); doc: `mactl show -json PLANFILE`
FORMATS = ("text", "json", "doc")


def write_config(folder: Path, indices: int, shape: str = "bench") -> Path:
    names = [f"logs-{i:05d}" for i in range(indices)]
    snapshot_filter = {"indices": {"names": ",".join(names), "mode": "include"}} if shape == "seed" else {}
    config = {
        "targets": [{"name": f"target_{t}", "endpoint": f"http://target{t}:9200"} for t in range(1, TARGETS + 1)],
        "source-migration-configurations": [
            {
                "source": {
                    "name": "source",
                    "endpoint": "http://source:9200",
                    "snapshotRepository": {"type": "fs", "location": "/snapshots/bench"},
                },
                "snapshot-and-migration-configs": [
                    {
                        "name": "snap1",
                        **snapshot_filter,
                        "migrations": [
                            {
                                "name": f"i{i}",
                                "metadata": {"indices": {"names": f"logs-{i:05d}", "mode": "include"}},
                                "documentBackfillConfigs": [{"name": "b0", "indices": {"names": f"logs-{i:05d}"}}],
                            }
                            for i in range(indices)
                        ],
                    }
                ],
                "replayer-config": {"maxSpeedupFactor": 2.0, "maxThroughputMbps": 1000},
            }
        ],
    }
    path = folder / f"{shape}-{indices}.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


def plan_once(path: Path, fmt: str) -> dict[str, float]:
    from mactl.config.loader import load_config
    from mactl.graph.expand import expand
    from mactl.plan.builder import PlanOptions, build_plan
    from mactl.plan.events import EventStream
    from mactl.plan.render_json import render_json
    from mactl.plan.render_text import render_text

    clock = time.process_time  # CPU time: the shared machine's load does not inflate it
    w0 = time.perf_counter()
    t0 = clock()
    loaded = load_config(path, env={})
    t1 = clock()
    graph = expand(loaded.config)
    t2 = clock()
    plan = build_plan(graph, None, PlanOptions(refresh=False), sensitive_values=loaded.sensitive_values)
    t3 = clock()
    if fmt == "text":
        out = render_text(plan)
    elif fmt == "json":  # what `plan --json` writes: the event stream
        sink = io.StringIO()
        EventStream(sink).plan(plan, "plan")
        out = sink.getvalue()
    else:  # "doc": the plan document `mactl show -json PLANFILE` writes
        out = render_json(plan)
    t4 = clock()
    wall = time.perf_counter() - w0
    peer_t0 = clock()
    for stage in graph.stages.values():
        orjson.dumps(stage.inputs, option=orjson.OPT_SORT_KEYS)
    peer = clock() - peer_t0
    return {
        "stages": len(graph.stages),
        "load": t1 - t0,
        "expand": t2 - t1,
        "plan": t3 - t2,
        "render": t4 - t3,
        "total": t4 - t0,
        "wall": wall,
        "bytes": len(out),
        "peer": peer,
    }


def best_of(path: Path, fmt: str, runs: int) -> dict[str, float]:
    results = [plan_once(path, fmt) for _ in range(runs)]
    return min(results, key=lambda r: r["total"])


def cli_run(args: list[str], folder: Path) -> tuple[str, float, float, float]:
    """One real `mactl ARGS` as a child process: (status, CPU s, wall s, peak RSS MB).

    Each runs in its own `python -c` wrapper that forks the CLI, so the peak RSS
    reported by `getrusage(RUSAGE_CHILDREN)` is that run's alone, not the largest of
    every child this benchmark has run.
    """
    probe = (
        "import resource, subprocess, sys, time\n"
        "t0 = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "wall = time.perf_counter() - t0\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(rc, u.ru_utime + u.ru_stime, wall, u.ru_maxrss)\n"
    )
    env = dict(os.environ, MACTL_WORKSPACE="default")
    command = [sys.executable, "-m", "mactl", *args]
    proc = subprocess.run(
        [sys.executable, "-c", probe, *command], cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    try:
        rc, cpu, wall, rss_kb = proc.stdout.split()
    except ValueError:
        return f"probe failed: {proc.stderr[-300:]}", 0.0, 0.0, 0.0
    return ("ok" if rc == "0" else f"exit {rc}"), float(cpu), float(wall), int(rss_kb) / 1024


def cli_plan(path: Path, folder: Path, fmt_args: list[str], peer: tuple[str, float, float, float]) -> str:
    """`mactl plan -refresh=false` at one size, and its ratios to `peer` (`mactl version`
    in the same run: the interpreter and mactl's imports, what every command pays)."""
    status, cpu, wall, rss = cli_run(["plan", "-refresh=false", "-c", str(path), *fmt_args], folder)
    _, peer_cpu, _, peer_rss = peer
    return (
        f"{cpu:.3f}s CPU, {wall:.3f}s wall, peak RSS {rss:.0f} MB ({status}); "
        f"vs `mactl version`: CPU x{cpu / max(peer_cpu, 1e-9):.1f}, RSS x{rss / max(peer_rss, 1e-9):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--shape", choices=["bench", "seed", "both"], default="both")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: " + ",".join(SIZES))
    args = parser.parse_args()
    shapes = ["bench", "seed"] if args.shape == "both" else [args.shape]
    sizes = [label for label in args.sizes.split(",") if label]
    with tempfile.TemporaryDirectory(prefix="mactl-bench-plan-") as tmp:
        folder = Path(tmp)
        for shape in shapes:
            paths = {label: write_config(folder, SIZES[label], shape) for label in sizes}
            rows = []
            for label, path in paths.items():
                for fmt in FORMATS:
                    r = best_of(path, fmt, args.runs)
                    rows.append((label, fmt, r))
            base = {fmt: r["total"] / r["stages"] for label, fmt, r in rows if label == sizes[0]}
            print(f"\nshape: {shape}")
            print(
                f"{'size':>5} {'fmt':>4} {'stages':>7} {'load':>7} {'expand':>7} {'plan':>7} {'render':>7} {'total':>7}"
                f" {'wall':>7} {'µs/stage':>9} {'vs ' + sizes[0]:>6} {'vs peer':>8} {'output':>9}"
            )
            print("(phases and total in CPU seconds; wall is elapsed time on the shared machine)")
            for label, fmt, r in rows:
                per = r["total"] / r["stages"]
                print(
                    f"{label:>5} {fmt:>4} {r['stages']:>7} {r['load']:7.3f} {r['expand']:7.3f} {r['plan']:7.3f}"
                    f" {r['render']:7.3f} {r['total']:7.3f} {r['wall']:7.3f} {per * 1e6:9.1f} {per / base[fmt]:6.2f}"
                    f" {r['total'] / r['peer']:8.1f} {r['bytes'] / 1e6:8.1f}M"
                )
            big_label = sizes[-1]
            peer = cli_run(["version"], folder)
            print(f"peer: `mactl version` {peer[1]:.3f}s CPU, {peer[2]:.3f}s wall, peak RSS {peer[3]:.0f} MB")
            for fmt_args in ([], ["--json"]):
                figures = cli_plan(paths[big_label], folder, fmt_args, peer)
                print(f"CLI `mactl plan -refresh=false {' '.join(fmt_args)}` at {big_label} ({shape}): {figures}")
        if args.profile:
            big = write_config(folder, SIZES[sizes[-1]], shapes[-1])
            profiler = cProfile.Profile()
            profiler.enable()
            plan_once(big, "text")
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
