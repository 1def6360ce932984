"""What per-instance planning costs the engine: one migration with K indices, one changed.

A config with one snapshot and one migration whose metadata and backfill stages each
hold K instances (one per index), against a state that recorded all of them. The
providers are in-process stand-ins that answer `plan_instances` at once (one index's
digest changed), so the figure is the planner's own work: diffing K instances per stage,
propagating the changed key downstream, and rendering text and JSON. The peer, in the
same run, is the same plan (refresh on, reading the same K-instance outputs) by providers
without instances: no instance is computed and the stages are planned as a whole, as
before instances existed. Evaluating the
transforms against the snapshot at plan time is I/O on top, as large as
`mactl metadata evaluate` on the same stage.

    python bench/plan_instances.py            # K = 200, 2,000, 20,000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mactl.providers import registry
from mactl.providers.base import BaseProvider, StageContext

SIZES = (200, 2_000, 20_000)
CHANGED = "logs-00000"


def _digests(k: int, changed: bool) -> dict[str, str]:
    return {f"logs-{i:05d}": ("2" if changed and i == 0 else "1") for i in range(k)}


class Instant(BaseProvider[Any]):
    """Any stage type: applies nothing; metadata and backfill stages have K instances."""

    available = True
    keys = 0

    def plan_instances(self, ctx: StageContext[Any]) -> dict[str, str] | None:
        if ctx.type not in ("metadata", "backfill"):
            return None
        return _digests(Instant.keys, changed=ctx.type == "metadata")


INSTALLED: list[type[Instant]] = []


def _instances_on(on: bool) -> None:
    for cls in INSTALLED:
        real = registry._load(REAL[cls.type])
        cls.instance_fields = real.instance_fields if on else frozenset()
    registry.get_provider.cache_clear()


REAL: dict[str, str] = {}


def _install() -> None:
    REAL.update(registry.BUILTIN)
    for stage_type in list(registry.BUILTIN):
        real = registry._load(registry.BUILTIN[stage_type])
        cls = type(
            f"Instant_{stage_type}",
            (Instant,),
            {
                "type": stage_type,
                "Inputs": real.Inputs,
                "replace_on": real.replace_on,
                "instance_fields": real.instance_fields,
            },
        )
        setattr(sys.modules[__name__], cls.__name__, cls)
        INSTALLED.append(cls)
        registry.BUILTIN[stage_type] = f"{__name__}:{cls.__name__}"
    registry.get_provider.cache_clear()


CONFIG = """
targets: [{name: os2, endpoint: "http://target:9200"}]
source-migration-configurations:
  - source:
      name: es
      endpoint: "http://source:9200"
      snapshotRepository: {type: fs, location: /snapshots/bench}
    snapshot-and-migration-configs:
      - name: snap
        migrations:
          - name: m0
            metadata: {indices: {names: "logs-*"}}
            documentBackfillConfigs: [{name: b0}]
"""


def _state(graph: Any, k: int) -> Any:
    from mactl.state.document import StageRecord, StateDocument

    from mactl.plan.builder import prepare

    doc = StateDocument()
    for address, d in prepare(graph, ()).items():
        outputs: dict[str, Any] = {}
        if d.stage.type in ("metadata", "backfill"):
            outputs["instances"] = {key: {"digest": v, "status": "complete"} for key, v in _digests(k, False).items()}
        doc.stages[address] = StageRecord(
            type=d.stage.type,
            inputs=d.masked,
            inputs_digest=d.digest,
            status="complete",
            outputs=outputs,
            depends_on=list(d.stage.depends_on),
        )
    return doc


def _timed(fn: Any, *args: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    from mactl.config.loader import load_config
    from mactl.graph.expand import expand
    from mactl.plan.builder import PlanOptions, build_plan
    from mactl.plan.render_json import render_json
    from mactl.plan.render_text import render_text

    _install()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mactl.yaml"
        path.write_text(CONFIG)
        graph = expand(load_config(path, env={}).config)
    print(f"{'instances/stage':>16} {'peer (whole)':>13} {'per-instance':>13} {'ratio':>6} {'text':>8} {'json':>8}")
    for k in SIZES:
        Instant.keys = k
        doc = _state(graph, k)
        _instances_on(False)
        peer = _timed(build_plan, graph, doc, PlanOptions(refresh=True))
        _instances_on(True)
        plan = build_plan(graph, doc, PlanOptions(refresh=True))
        changes = {c.address: c for c in plan.changes}
        meta = next(c for a, c in changes.items() if a.startswith("metadata."))
        assert meta.instance_scope == {CHANGED: "replace"}, meta.instance_scope
        took = _timed(build_plan, graph, doc, PlanOptions(refresh=True))
        text = _timed(render_text, plan)
        js = _timed(render_json, plan)
        print(
            f"{k:>16,} {peer * 1000:>11.1f}ms {took * 1000:>11.1f}ms {took / peer:>5.1f}x {text * 1000:>6.1f}ms {js * 1000:>6.1f}ms"
        )


if __name__ == "__main__":
    main()
