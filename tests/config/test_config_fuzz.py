"""Mangled configs never crash: every problem comes out as a ConfigErrors with a message.

Starting from the seed's samples and a multi-source config, a seeded random walk
replaces values with wrong types, deletes keys and adds stray ones, a few at a time.
Loading, expanding and the providers' plan-time checks must either succeed or raise
`ConfigErrors`; any other exception is a bug that would show a traceback.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mactl.cli.config_cmd import provider_problems
from mactl.config import ConfigErrors, load_config
from mactl.config.files import read_document
from mactl.graph.expand import expand

SEED = Path(__file__).parents[1] / "data" / "seed"
MULTI = """\
targets:
  - {endpoint: "http://t1:9200"}
  - {name: perf, endpoint: "http://t2:9200", auth: {type: basic, username: u, password: pw}}
source-migration-configurations:
  - source: {name: es, endpoint: "http://es:9200", snapshotRepository: {type: s3, bucket: b, region: r}}
    snapshot-and-migration-configs:
      - indices: {names: "logs-*"}
        migrations:
          - metadata: {indices: {names: [a]}, lifecycle: {ignoreChanges: [onExisting]}}
            documentBackfillConfigs: [{sample: {percent: 5}}, {name: rest, transforms: "m:f"}]
      - existingSnapshot: {name: old, repository: reg}
    capture: {log: {type: kafka, bootstrapServers: "k:9092"}}
    replayer-config: {maxSpeedupFactor: 3}
workflow:
  - {type: switchover, name: swing}
  - {type: manual, name: clients, instructions: do it, after: [switchover.swing]}
"""
JUNK: list[Any] = [
    None,
    0,
    -1,
    1.5,
    "x",
    "",
    "{{ var.nope }}",
    "{{",
    [],
    {},
    True,
    [1, "a"],
    {"a": 1},
    {"names": 3},
    "re:(",
    "http://ok:9200",
    "required",
]
STRAY_KEYS: list[Any] = ["junk", "name", "approval", "lifecycle", "indices", 7, "transforms", "after"]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice([p for p in _paths(doc) if p] or [()])
        if not path:
            return rng.choice(JUNK)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        roll = rng.random()
        if roll < 0.5:
            parent[path[-1]] = copy.deepcopy(rng.choice(JUNK))
        elif roll < 0.7 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(STRAY_KEYS)] = copy.deepcopy(rng.choice(JUNK))
    return doc


BASES = [read_document(SEED / n) for n in ("sample-single-target.json", "sample-single.json", "top-level-filled.jsonc")]
BASES.append(yaml.safe_load(MULTI))


@pytest.mark.parametrize("seed", range(4))
def test_mangled_configs_give_config_errors_only(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    path = tmp_path / "mactl.yaml"
    failures = 0
    for _ in range(60):
        path.write_text(yaml.safe_dump(_mutate(rng.choice(BASES), rng)))
        try:
            provider_problems(expand(load_config(path, env={}).config))
        except ConfigErrors as err:
            failures += 1
            assert err.issues and all(issue.message for issue in err.issues)
            assert "Traceback" not in str(err)
    assert failures > 20, "the mutations should break most configs"
