"""The console's page data without a browser: progress rate and ETA, rolled-back stages, grouping of a big map."""

from __future__ import annotations

from pathlib import Path

from mactl.state.document import StageRecord, StateDocument

from mactl.ui import views
from mactl.ui.layout import nodes_for, to_dot


def test_progress_rate_and_eta_come_from_the_current_run_of_the_timeline() -> None:
    timeline = [
        {"at": 100.0, "done": 0, "total": None, "unit": "", "message": "apply"},
        {"at": 101.0, "done": 50, "total": 1000, "unit": "docs", "message": ""},
        # a second run (after a failure) starts again: only it counts
        {"at": 200.0, "done": 0, "total": None, "unit": "", "message": "apply"},
        {"at": 202.0, "done": 200, "total": 1000, "unit": "docs", "message": ""},
        {"at": 204.0, "done": 400, "total": 1000, "unit": "docs", "message": ""},
    ]
    running = views.progress_of(timeline, running=True)
    assert running is not None
    assert running.rate == 100.0  # 400 docs in the 4 s since this run began
    assert running.eta_s == 6.0  # 600 left at 100/s
    assert running.text == "400/1,000 docs" and running.unit == "docs"
    assert running.plot_svg is not None and "<svg" in running.plot_svg
    finished = views.progress_of(timeline, running=False)
    assert finished is not None and finished.eta_s is None
    assert views.progress_of([], running=True) is None


def test_a_stage_the_state_forgot_after_undoing_it_shows_as_rolled_back() -> None:
    doc = StateDocument(stages={"snapshot.s.a": StageRecord(type="snapshot", status="complete")})
    doc.record(who="w", operation="apply", address="snapshot.s.a", result="ok")
    doc.record(who="w", operation="apply", address="metadata.s.a.t.m0", result="ok")
    doc.record(who="w", operation="destroy rollback", address="metadata.s.a.t.m0", result="ok")
    doc.record(who="w", operation="apply", address="backfill.s.a.t.m0.b1", result="ok")
    doc.record(who="w", operation="state rm", address="backfill.s.a.t.m0.b1", result="ok")
    doc.record(who="w", operation="apply", address="backfill.s.a.t.m0.b0", result="failed")
    assert views.rolled_back_addresses(doc) == {"metadata.s.a.t.m0"}
    assert views.rolled_back_addresses(None) == set()


def test_past_the_threshold_the_map_draws_one_node_per_source_snapshot_and_target(tmp_path: Path) -> None:
    from mactl.config.loader import load_config
    from mactl.graph.expand import expand

    entries = "\n".join(
        f"          - {{name: i{i}, metadata: {{}}, documentBackfillConfigs: [{{name: b0}}]}}" for i in range(30)
    )
    config = f"""
targets: [{{name: a, endpoint: "http://127.0.0.1:1"}}, {{name: b, endpoint: "http://127.0.0.1:2"}}]
source-migration-configurations:
  - source: {{name: es, endpoint: "http://127.0.0.1:3", snapshotRepository: {{type: fs, location: /snapshots}}}}
    snapshot-and-migration-configs:
      - name: snap
        migrations:
{entries}
"""
    path = tmp_path / "mactl.yaml"
    path.write_text(config)
    graph = expand(load_config(path, env={}).config)
    assert len(graph.stages) == 1 + 2 * 30 * 2 + 2
    nodes, edges, grouped = nodes_for(graph, group_above=50)
    assert grouped
    labels = sorted(n.label.split("\n")[1] for n in nodes)
    assert labels == ["es.a", "es.b", "es.snap", "es.snap.a.*", "es.snap.a.*", "es.snap.b.*", "es.snap.b.*"]
    assert sum(len(n.members) for n in nodes) == len(graph.stages)
    by_label = {n.label: n.id for n in nodes}
    assert (by_label["metadata ×30\nes.snap.a.*"], by_label["backfill ×30\nes.snap.a.*"]) in edges
    ungrouped, _, flat = nodes_for(graph, group_above=1000)
    assert not flat and len(ungrouped) == len(graph.stages)
    assert "rankdir=LR" in to_dot(nodes, edges)
