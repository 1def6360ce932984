"""Graph rendering (mermaid, dot, json), pinned with syrupy snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mactl.cli import app
from mactl.cli.app import run_guarded
from mactl.config import load_config
from mactl.config.files import read_document
from mactl.graph.expand import StageGraph, expand
from mactl.graph.render import render_graph

SEED = Path(__file__).parents[1] / "data" / "seed"


def _two_target_seed(tmp_path: Path) -> Path:
    """The seed's single-target sample with a second target: the seed's "second pipeline"."""
    data = read_document(SEED / "sample-single-target.json")
    data["targets"] = [data.pop("target"), {"name": "perf", "endpoint": "http://perf-cluster:9200/"}]
    data["source-migration-configurations"][0]["static-migration-configs"][0]["approval"] = "required"
    data["workflow"] = [{"type": "manual", "name": "upgrade_clients", "instructions": "Upgrade the clients."}]
    path = tmp_path / "mactl.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture()
def seed_graph() -> StageGraph:
    return expand(load_config(SEED / "sample-single.json", env={}).config)


@pytest.fixture()
def two_target_graph(tmp_path: Path) -> StageGraph:
    return expand(load_config(_two_target_seed(tmp_path), env={}).config)


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "json"])
def test_seed_graph(seed_graph: StageGraph, fmt: str, snapshot) -> None:  # noqa: ANN001
    assert render_graph(seed_graph, fmt) == snapshot


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "json"])
def test_two_targets_draw_clones(two_target_graph: StageGraph, fmt: str, snapshot) -> None:  # noqa: ANN001
    text = render_graph(two_target_graph, fmt)
    assert text == snapshot
    if fmt == "mermaid":
        assert "classDef clone fill:#ddd,stroke:#333,stroke-width:4px" in text
        assert (
            "class metadata_source_snap1_perf_m0,backfill_source_snap1_perf_m0_b0,replay_source_perf,validate_source_perf clone"
            in text
        )


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "json"])
def test_colored_by_planned_action(two_target_graph: StageGraph, fmt: str, snapshot) -> None:  # noqa: ANN001
    colors = {
        "capture.source": "noop",
        "snapshot.source.snap1": "replace",
        "metadata.source.snap1.target_1.m0": "replace",
        "backfill.source.snap1.target_1.m0.b0": "replace",
        "metadata.source.snap1.perf.m0": "create",
        "backfill.source.snap1.perf.m0.b0": "create",
        "replay.source.target_1": "update",
        "replay.source.perf": "create",
        "validate.source.target_1": "rollback",
        "validate.source.perf": "create",
        "manual.upgrade_clients": "awaiting_approval",
        "not.in.graph": "create",
    }
    text = render_graph(two_target_graph, fmt, colors)
    assert text == snapshot
    if fmt == "json":
        doc = json.loads(text)
        assert set(doc["legend"]) == {"noop", "replace", "create", "update", "rollback", "awaiting_approval"}
        assert {n["address"]: n["class"] for n in doc["nodes"]} == {
            k: v for k, v in colors.items() if k != "not.in.graph"
        }


def test_unknown_class_names_get_palette_colours_in_name_order(seed_graph: StageGraph) -> None:
    colors = {a: ("zeta" if a.startswith("capture") else "alpha") for a in seed_graph.stages}
    doc = json.loads(render_graph(seed_graph, "json", colors))
    assert doc["legend"] == {
        "alpha": {"fill": "#e0f7fa", "stroke": "#00838f"},
        "zeta": {"fill": "#f3e5f5", "stroke": "#6a1b9a"},
    }


def test_unknown_format_is_refused(seed_graph: StageGraph) -> None:
    with pytest.raises(ValueError, match="unknown graph format 'svg'"):
        render_graph(seed_graph, "svg")


def test_graph_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _two_target_seed(tmp_path)
    assert run_guarded(app, ["graph", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart TD\n") and "replay_source_perf" in out
    assert run_guarded(app, ["graph", "-c", str(path), "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph mactl {")
    assert run_guarded(app, ["graph", "-c", str(path), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["nodes"]) == 11
    assert run_guarded(app, ["graph", "-c", str(path), "--format", "png"]) == 1
    assert "--format: unknown format 'png'" in capsys.readouterr().err


def test_graph_command_colours_by_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mactl.state import LocalStateConfig, StageRecord, StateDocument, open_backend

    path = _two_target_seed(tmp_path)
    backend = open_backend(LocalStateConfig(), base_dir=tmp_path)
    doc = StateDocument()
    doc.stages["capture.source"] = StageRecord(type="capture", status="complete")
    doc.stages["snapshot.source.snap1"] = StageRecord(type="snapshot", status="failed")
    with backend.lock("test"):
        backend.write(doc)
    assert run_guarded(app, ["graph", "-c", str(path), "--state", "--format", "json"]) == 0
    graph_doc = json.loads(capsys.readouterr().out)
    classes = {n["address"]: n["class"] for n in graph_doc["nodes"]}
    assert classes.pop("capture.source") == "complete"
    assert classes.pop("snapshot.source.snap1") == "failed"
    assert set(classes.values()) == {"pending"}
    assert set(graph_doc["legend"]) == {"complete", "failed", "pending"}


def test_graph_command_colours_by_a_saved_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mactl.plan.builder import PlanOptions, build_plan
    from mactl.plan.planfile import save_plan

    path = _two_target_seed(tmp_path)
    loaded = load_config(path, env={})
    plan = build_plan(expand(loaded.config), None, PlanOptions(refresh=False), sensitive_values=loaded.sensitive_values)
    plan_file = tmp_path / "plan.out"
    save_plan(plan, plan_file)
    assert run_guarded(app, ["graph", "-c", str(path), "--plan", str(plan_file), "--format", "json"]) == 0
    graph_doc = json.loads(capsys.readouterr().out)
    assert {n["class"] for n in graph_doc["nodes"]} == {"create"}
    assert set(graph_doc["legend"]) == {"create"}
    assert run_guarded(app, ["graph", "-c", str(path), "--plan", str(plan_file), "--state"]) == 1
    assert "--state and --plan" in capsys.readouterr().err
