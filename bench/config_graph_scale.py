"""Benchmark: load a seed-shaped config and expand it into 1k, 3k and 12k stages.

The config is the issue's benchmark shape: one source, one snapshot entry, N indices each
migrated by its own metadata and backfill entry, to 3 targets (6 stages per index, plus
capture, snapshot, and a replay and validate per target). Times `load_config` (read,
variables, normalise, validate, checks) and `expand` (stages, inputs, DAG, input
validation against every provider schema) separately, best of `--repeat` runs.

The peer, in the same run on the same data: `orjson` parsing the config file and
serialising every stage's inputs, i.e. only touching the same bytes once each way with
the fastest JSON library around. Ratios to it mean something on any machine; the
per-stage figures at 1k and 12k show whether growth is linear. CPU time (this process
only) is printed beside wall time: on a shared machine it is the steadier figure.
Not run by CI.

    python bench/config_graph_scale.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from mactl.config import load_config
from mactl.graph.expand import expand

STAGE_COUNTS = (1_000, 3_000, 12_000)
TARGETS = 3


def write_config(folder: Path, indices: int) -> Path:
    config = {
        "targets": [
            {"endpoint": f"https://target-{i}:9200", "auth": {"type": "basic", "username": "admin", "password": "pw"}}
            for i in range(TARGETS)
        ],
        "source-migration-configurations": [
            {
                "source": {
                    "endpoint": "https://source:9200",
                    "snapshotRepository": {"type": "s3", "bucket": "snaps", "region": "us-east-1"},
                },
                "snapshot-and-migration-configs": [
                    {
                        "indices": {"names": "logs-*", "mode": "include"},
                        "migrations": [
                            {
                                "metadata": {"indices": {"names": f"logs-{i:05d}"}},
                                "documentBackfillConfigs": {"indices": {"names": [f"logs-{i:05d}"]}},
                            }
                            for i in range(indices)
                        ],
                    }
                ],
                "replayer-config": {"maxSpeedupFactor": 2.0, "maxThroughputMbps": 1000},
            }
        ],
    }
    path = folder / f"scale-{indices}.json"
    path.write_bytes(orjson.dumps(config))
    return path


def best(fn: Callable[[], object], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'stages':>7} {'load s':>8} {'expand s':>9} {'total s':>8} {'µs/stage':>9} {'peer s':>8} {'ratio':>6}"
        f" {'cpu s':>7} {'cpu peer':>9} {'cpu ratio':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for wanted in STAGE_COUNTS:
            indices = max(1, (wanted - 2 - 2 * TARGETS) // (2 * TARGETS))
            path = write_config(Path(tmp), indices)
            loaded = load_config(path, env={})
            graph = expand(loaded.config)
            stages = len(graph.stages)
            t_load = best(lambda p=path: load_config(p, env={}), args.repeat)
            t_expand = best(lambda c=loaded.config: expand(c).topological(), args.repeat)
            inputs = [s.inputs for s in graph.stages.values()]
            t_peer = best(lambda p=path, i=inputs: (orjson.loads(p.read_bytes()), orjson.dumps(i)), args.repeat)
            total = t_load + t_expand
            cpu = best(
                lambda p=path: expand(load_config(p, env={}).config).topological(), args.repeat, time.process_time
            )
            cpu_peer = best(
                lambda p=path, i=inputs: (orjson.loads(p.read_bytes()), orjson.dumps(i)), args.repeat, time.process_time
            )
            print(
                f"{stages:>7} {t_load:>8.3f} {t_expand:>9.3f} {total:>8.3f} {total / stages * 1e6:>9.1f}"
                f" {t_peer:>8.3f} {total / t_peer:>6.1f} {cpu:>7.3f} {cpu_peer:>9.3f} {cpu / max(cpu_peer, 1e-9):>9.1f}"
            )
    print(
        f"(best of {args.repeat}; expand includes topological order; peer = orjson parse + dump of all inputs;"
        " cpu = this process's CPU time for load+expand, steadier than wall time on a busy machine)"
    )


if __name__ == "__main__":
    main()
