"""How `mactl plan -refresh=false` scales: 1k, 3k and 12k stages, text and JSON output.

Writes a seed-shaped config (the `targets` list shape) with N indices, each migrated by
its own metadata and backfill entry, to 3 targets: 6·N + 8 stages (N = 2,000 gives
12,008). For each size it times, in-process, the whole `plan` path (load the config,
expand the graph, build the plan against an empty state, render) with text and with
JSON rendering, and reports each phase. Then it runs the real CLI once as a subprocess
at the largest size. Figures are reported as ratios too: against the 1k run (linear
growth means time per stage stays flat) and against a peer on the same machine, the
same run's bare `orjson.dumps` of every stage's inputs (the least any planner that
looks at every input must do).

    python bench/plan_scale.py            # 1k, 3k, 12k
    python bench/plan_scale.py --profile  # also cProfile the 12k text plan
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

SIZES = {"1k": 166, "3k": 500, "12k": 2000}  # indices → 6·N + 8 stages
TARGETS = 3


def write_config(folder: Path, indices: int) -> Path:
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
    path = folder / f"bench-{indices}.json"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


def plan_once(path: Path, fmt: str) -> dict[str, float]:
    from mactl.config.loader import load_config
    from mactl.graph.expand import expand
    from mactl.plan.builder import PlanOptions, build_plan
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
    out = render_text(plan) if fmt == "text" else render_json(plan)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mactl-bench-plan-") as tmp:
        folder = Path(tmp)
        paths = {label: write_config(folder, n) for label, n in SIZES.items()}
        rows = []
        for label, path in paths.items():
            for fmt in ("text", "json"):
                r = best_of(path, fmt, args.runs)
                rows.append((label, fmt, r))
        base = {fmt: r["total"] / r["stages"] for label, fmt, r in rows if label == "1k"}
        print(
            f"{'size':>5} {'fmt':>4} {'stages':>7} {'load':>7} {'expand':>7} {'plan':>7} {'render':>7} {'total':>7}"
            f" {'wall':>7} {'µs/stage':>9} {'vs 1k':>6} {'vs peer':>8} {'output':>9}"
        )
        print("(phases and total in CPU seconds; wall is elapsed time on the shared machine)")
        for label, fmt, r in rows:
            per = r["total"] / r["stages"]
            print(
                f"{label:>5} {fmt:>4} {r['stages']:>7} {r['load']:7.3f} {r['expand']:7.3f} {r['plan']:7.3f} {r['render']:7.3f}"
                f" {r['total']:7.3f} {r['wall']:7.3f} {per * 1e6:9.1f} {per / base[fmt]:6.2f} {r['total'] / r['peer']:8.1f} {r['bytes'] / 1e6:8.1f}M"
            )
        big = paths["12k"]
        for fmt_args in ([], ["--json"]):
            env = dict(os.environ, MACTL_WORKSPACE="default")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "mactl", "plan", "-refresh=false", "-c", str(big), *fmt_args],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            elapsed = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr[-300:]}"
            print(
                f"CLI subprocess `mactl plan -refresh=false {' '.join(fmt_args)}` at 12k: {cpu:.3f}s CPU, {elapsed:.3f}s wall ({status})"
            )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            plan_once(big, "text")
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
