"""A replaced metadata stage invalidates its backfill in the plan (engine property, real providers' schemas)."""

from __future__ import annotations

from pathlib import Path

from mactl.state.document import StageRecord, StateDocument

from mactl.config.loader import load_config
from mactl.graph.expand import expand
from mactl.plan.builder import PlanOptions, build_plan, prepare

CONFIG = """
targets:
  - name: os2
    endpoint: http://127.0.0.1:29200
source-migration-configurations:
  - source:
      name: es710
      endpoint: http://127.0.0.1:19200
      snapshotRepository: {type: fs, name: snapmeta-plan, location: /tmp/mactl-dev/repo/snapmeta/plan}
    snapshot-and-migration-configs:
      - name: snap1
        indices: [{names: "snapmeta-plan-*"}]
        migrations:
          - name: m0
            metadata:
              multiTypeMode: MODE
              onExisting: ON_EXISTING
            documentBackfillConfigs:
              - name: b0
"""


def _graph(tmp_path: Path, mode: str, on_existing: str = "fail"):  # noqa: ANN202
    path = tmp_path / "mactl.yaml"
    path.write_text(CONFIG.replace("MODE", mode).replace("ON_EXISTING", on_existing))
    return expand(load_config(path, env={}).config)


def _applied_state(graph) -> StateDocument:  # noqa: ANN001
    """The state after every stage of `graph` was applied."""
    doc = StateDocument()
    for address, d in prepare(graph, ()).items():
        doc.stages[address] = StageRecord(
            type=d.stage.type,
            inputs=d.masked,
            inputs_digest=d.digest,
            status="complete",
            outputs={"created": []},
            depends_on=list(d.stage.depends_on),
        )
    return doc


def test_replaced_metadata_stage_invalidates_its_backfill(tmp_path: Path) -> None:
    applied = _applied_state(_graph(tmp_path, "union"))
    meta = "metadata.es710.snap1.os2.m0"
    backfill = "backfill.es710.snap1.os2.m0.b0"

    unchanged = build_plan(_graph(tmp_path, "union"), applied, PlanOptions(refresh=False))
    assert not unchanged.has_changes

    # multiTypeMode is in the metadata provider's replace_on: the stage is replaced, and so is its backfill.
    plan = build_plan(_graph(tmp_path, "fail"), applied, PlanOptions(refresh=False))
    changes = {c.address: c for c in plan.changes}
    assert changes[meta].action == "replace"
    assert any(a.path == "multiTypeMode" and a.forces_replacement for a in changes[meta].attributes)
    assert changes[backfill].action == "replace" and changes[backfill].reason == f"upstream {meta} replaced"
    assert changes["snapshot.es710.snap1"].action == "noop"

    # onExisting is not: an update in place leaves the backfill alone.
    plan = build_plan(_graph(tmp_path, "union", on_existing="skip"), applied, PlanOptions(refresh=False))
    changes = {c.address: c for c in plan.changes}
    assert changes[meta].action == "update" and changes[backfill].action == "noop"
