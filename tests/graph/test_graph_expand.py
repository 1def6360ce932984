"""Stage graph expansion: addresses, edges, clones, and the add-a-target property."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mactl.providers.registry import get_provider

from mactl.config import load_config
from mactl.graph.expand import StageGraph, expand

SEED = Path(__file__).parents[1] / "data" / "seed"

SEED_ADDRESSES = [
    "capture.source",
    "snapshot.source.snap1",
    "metadata.source.snap1.target_1.m0",
    "backfill.source.snap1.target_1.m0.b0",
    "replay.source.target_1",
    "validate.source.target_1",
]
SEED_EDGES = {
    ("capture.source", "snapshot.source.snap1"),
    ("snapshot.source.snap1", "metadata.source.snap1.target_1.m0"),
    ("metadata.source.snap1.target_1.m0", "backfill.source.snap1.target_1.m0.b0"),
    ("backfill.source.snap1.target_1.m0.b0", "replay.source.target_1"),
    ("capture.source", "replay.source.target_1"),
    ("snapshot.source.snap1", "replay.source.target_1"),
    ("backfill.source.snap1.target_1.m0.b0", "validate.source.target_1"),
    ("replay.source.target_1", "validate.source.target_1"),
}

MULTI = """\
targets:
  - {endpoint: "http://t1:9200"}
  - {name: perf, endpoint: "http://t2:9200", auth: {type: basic, username: u, password: pw-secret}}
source-migration-configurations:
  - source:
      name: es
      endpoint: http://es:9200
      auth: {type: basic, username: u, password: src-secret}
      snapshotRepository: {type: s3, bucket: snaps, region: us-east-1}
    snapshot-and-migration-configs:
      - name: daily
        indices: {names: "logs-*", mode: include}
        approval: required
        migrations:
          - metadata:
              indices: {names: [logs-2024]}
              lifecycle: {preventRollback: true, ignoreChanges: [onExisting], rollback: manual}
            documentBackfillConfigs:
              - indices: {names: "re:logs-2024-0[1-6]"}
                sample: {percent: 10}
              - name: rest
          - documentBackfillConfigs: {transforms: "mypkg.transforms:fix_doc"}
      - existingSnapshot: {name: nightly-2024-06-01, repository: old-repo}
    capture:
      log: {type: kafka, bootstrapServers: "k:9092"}
    replayer-config: {maxSpeedupFactor: 3}
  - source: {endpoint: http://os:9200, snapshotRepository: {type: fs, location: /repo/os}}
    static-migration-configs:
      - metadata: {}
    validation: {enabled: false}
workflow:
  - {type: switchover, name: swing_proxy, source: es, target: perf}
  - {type: manual, name: upgrade_clients, instructions: "Point the clients at the new cluster.", approval: required}
  - {type: teardown, name: tools, source: es, after: [manual.upgrade_clients]}
"""


def _graph(tmp_path: Path, text: str) -> StageGraph:
    path = tmp_path / "mactl.yaml"
    path.write_text(text)
    return expand(load_config(path, env={}).config)


@pytest.mark.parametrize("name", ["sample-single-target.json", "sample-single.json", "top-level-filled.jsonc"])
def test_seed_samples_expand_to_the_seed_flow(name: str) -> None:
    graph = expand(load_config(SEED / name, env={}).config)
    assert graph.topological() == SEED_ADDRESSES
    assert set(graph.dag.edges) == SEED_EDGES
    for address, stage in graph.stages.items():
        assert set(stage.depends_on) == {a for a, b in SEED_EDGES if b == address}
        assert stage.clone_of is None
        get_provider(stage.type).Inputs.model_validate(stage.inputs)


def test_seed_stage_inputs() -> None:
    graph = expand(load_config(SEED / "sample-single.json", env={}).config)
    snap = graph.stages["snapshot.source.snap1"].inputs
    assert snap["snapshotName"] == "mactl-source-snap1" and snap["existing"] is False
    assert snap["repository"]["location"] == "mactl-source"
    assert snap["indices"] == [{"names": ["index1", "index2"], "mode": "exclude"}]
    meta = graph.stages["metadata.source.snap1.target_1.m0"].inputs
    assert meta["source"]["endpoint"] == "http://opensearch-master-headless:9200/"
    assert meta["target"]["name"] == "target_1"
    assert meta["from"] == "snapshot"
    replay = graph.stages["replay.source.target_1"].inputs
    assert (replay["maxSpeedupFactor"], replay["maxThroughputMbps"]) == (2.0, 1000.0)
    assert replay["log"]["type"] == "file"


def test_all_three_shapes_give_identical_stages() -> None:
    graphs = [
        expand(load_config(SEED / n, env={}).config)
        for n in ("sample-single-target.json", "sample-single.json", "top-level-filled.jsonc")
    ]
    assert graphs[0].stages == graphs[1].stages == graphs[2].stages


def test_multi_source_multi_target_addresses_and_edges(tmp_path: Path) -> None:
    graph = _graph(tmp_path, MULTI)
    per_target = [
        "metadata.es.daily.{t}.m0",
        "backfill.es.daily.{t}.m0.b0",
        "backfill.es.daily.{t}.m0.rest",
        "backfill.es.daily.{t}.m1.b0",
        "replay.es.{t}",
        "validate.es.{t}",
        "metadata.source.snap1.{t}.m0",
    ]
    expected = {
        "capture.es",
        "snapshot.es.daily",
        "snapshot.es.snap2",
        "snapshot.source.snap1",
        "switchover.swing_proxy",
        "manual.upgrade_clients",
        "teardown.tools",
        *(a.format(t=t) for a in per_target for t in ("target_1", "perf")),
    }
    assert set(graph.stages) == expected
    deps = {a: set(s.depends_on) for a, s in graph.stages.items()}
    assert deps["snapshot.es.daily"] == {"capture.es"}
    assert deps["backfill.es.daily.perf.m1.b0"] == {"snapshot.es.daily"}, "no metadata: straight after the snapshot"
    assert deps["replay.es.perf"] == {
        "capture.es",
        "backfill.es.daily.perf.m0.b0",
        "backfill.es.daily.perf.m0.rest",
        "backfill.es.daily.perf.m1.b0",
        "snapshot.es.snap2",
        "snapshot.es.daily",
    }, "replay also waits on every snapshot of its source, to start from their capture positions"
    assert deps["validate.es.perf"] == deps["replay.es.perf"] - {"capture.es", "snapshot.es.daily"} | {"replay.es.perf"}
    assert deps["metadata.source.snap1.perf.m0"] == {"snapshot.source.snap1"}
    assert deps["switchover.swing_proxy"] == {"validate.es.target_1", "validate.es.perf"}
    assert deps["manual.upgrade_clients"] == {"switchover.swing_proxy"}
    assert deps["teardown.tools"] == {"manual.upgrade_clients"}
    assert graph.ancestors("backfill.es.daily.perf.m0.b0") == {
        "capture.es",
        "snapshot.es.daily",
        "metadata.es.daily.perf.m0",
    }
    assert "teardown.tools" in graph.descendants("capture.es")
    order = graph.topological()
    assert all(order.index(d) < order.index(a) for a, ds in deps.items() for d in ds)


def test_clones_name_their_first_target_twin(tmp_path: Path) -> None:
    graph = _graph(tmp_path, MULTI)
    for address, stage in graph.stages.items():
        if ".perf" in address:
            assert stage.clone_of == address.replace(".perf", ".target_1")
            assert stage.clone_of in graph.stages
        else:
            assert stage.clone_of is None


def test_stage_options_inputs_and_secrets(tmp_path: Path) -> None:
    graph = _graph(tmp_path, MULTI)
    snap = graph.stages["snapshot.es.daily"]
    assert snap.approval_required
    assert snap.inputs["repository"] == {
        "type": "s3",
        "name": None,
        "location": None,
        "bucket": "snaps",
        "basePath": None,
        "region": "us-east-1",
        "endpoint": None,
        "compress": False,
    }
    assert snap.sensitive_paths == {"source.auth.password"}
    assert snap.inputs["source"]["auth"]["password"] == "src-secret"

    existing = graph.stages["snapshot.es.snap2"].inputs
    assert existing["existing"] is True and existing["snapshotName"] == "nightly-2024-06-01"
    assert existing["repository"]["name"] == "old-repo" and existing["repository"]["bucket"] == "snaps"

    meta = graph.stages["metadata.es.daily.perf.m0"]
    assert meta.inputs["indices"] == [
        {"names": ["logs-*"], "mode": "include"},
        {"names": ["logs-2024"], "mode": "include"},
    ], "parent filter first, then the stage's own"
    assert meta.lifecycle.prevent_rollback and meta.lifecycle.rollback == "manual"
    assert meta.lifecycle.ignore_changes == ("onExisting",)
    assert meta.sensitive_paths == {"source.auth.password", "target.auth.password"}

    b0 = graph.stages["backfill.es.daily.perf.m0.b0"].inputs
    assert b0["indices"] == [
        {"names": ["logs-*"], "mode": "include"},
        {"names": ["re:logs-2024-0[1-6]"], "mode": "include"},
    ]
    assert b0["sample"] == {"percent": 10.0, "maxDocsPerIndex": None}
    assert graph.stages["backfill.es.daily.target_1.m1.b0"].inputs["transforms"] == [
        {"kind": "python", "template": None, "file": None, "callable": "mypkg.transforms:fix_doc"}
    ]
    replay = graph.stages["replay.es.perf"].inputs
    assert replay["log"]["type"] == "kafka" and replay["log"]["bootstrapServers"] == "k:9092"
    assert graph.stages["capture.es"].inputs["log"] == replay["log"]
    manual = graph.stages["manual.upgrade_clients"]
    assert manual.inputs == {"instructions": "Point the clients at the new cluster."}
    assert manual.approval_required
    assert graph.stages["switchover.swing_proxy"].inputs["target"]["name"] == "perf"
    assert graph.stages["teardown.tools"].inputs["target"]["name"] == "target_1", "none named: the first target"


def _add_target(text: str) -> str:
    data = yaml.safe_load(text)
    data["targets"].append({"name": "third", "endpoint": "http://t3:9200"})
    return yaml.safe_dump(data)


@pytest.mark.parametrize("text", [MULTI, (SEED / "top-level-filled.jsonc").read_text()], ids=["multi", "seed"])
def test_adding_a_target_adds_exactly_its_per_target_stages(tmp_path: Path, text: str) -> None:
    if text.lstrip().startswith("//"):
        from mactl.config.files import parse_text

        data = parse_text(text, source="seed", suffix=".jsonc")
        data["workflow"] = [{"type": "switchover", "name": "swing_proxy"}]  # default target: the first
        text = yaml.safe_dump(data)
    before = _graph(tmp_path, text)
    after = _graph(tmp_path, _add_target(text))
    added = set(after.stages) - set(before.stages)
    assert set(before.stages) <= set(after.stages)
    per_target_first = {a for a in before.stages if ".target_1" in a.split(".", 1)[1] + "."}
    assert added == {a.replace(".target_1", ".third") for a in per_target_first}
    for address in added:
        assert after.stages[address].clone_of == address.replace(".third", ".target_1")
    # Nothing else changed: same inputs, same dependencies, except workflow steps that
    # wait for every validate stage (which now include the new target's).
    for address, stage in before.stages.items():
        new = after.stages[address]
        assert new.inputs == stage.inputs
        if new.depends_on != stage.depends_on:
            assert address == "switchover.swing_proxy"
            assert set(new.depends_on) - set(stage.depends_on) in ({"validate.es.third"}, {"validate.source.third"})


def test_generated_names_follow_positions(tmp_path: Path) -> None:
    text = """\
targets: [{endpoint: "http://a:9200"}, {name: b, endpoint: "http://b:9200"}, {endpoint: "http://c:9200"}]
source-migration-configurations:
  - source: {endpoint: "http://s1:9200"}
    static-migration-configs: [{metadata: {}}, {metadata: {}, documentBackfillConfigs: [{}, {}]}]
    validation: {enabled: false}
  - source: {endpoint: "http://s2:9200"}
    static-migration-configs: [{metadata: {}}]
    validation: {enabled: false}
"""
    graph = _graph(tmp_path, text)
    assert {a for a in graph.stages if a.startswith(("snapshot.", "backfill."))} == {
        "snapshot.source_1.snap1",
        "snapshot.source_1.snap2",
        "snapshot.source_2.snap1",
        *(f"backfill.source_1.snap2.{t}.m0.{b}" for t in ("target_1", "b", "target_3") for b in ("b0", "b1")),
    }
    assert graph.stages["metadata.source_2.snap1.target_3.m0"].clone_of == "metadata.source_2.snap1.target_1.m0"


def test_input_validation_catches_a_bad_stage_and_a_bad_clone_target() -> None:
    from mactl.config.issues import ConfigErrors
    from mactl.graph.expand import _validate_inputs
    from mactl.graph.stage import Stage

    graph = expand(load_config(SEED / "sample-single.json", env={}).config)
    good = graph.stages["replay.source.target_1"]
    bad_target = {**good.inputs, "target": {"name": "t2"}}  # no endpoint
    clone = Stage("replay.source.t2", "replay", bad_target, clone_of=good.address)
    broken = Stage("replay.source.t3", "replay", {**good.inputs, "maxSpeedupFactor": "fast"})
    with pytest.raises(ConfigErrors) as info:
        _validate_inputs([good, clone, broken])
    assert [i.path for i in info.value.issues] == ["replay.source.t2", "replay.source.t3"]
    assert "at target.endpoint: Field required" in info.value.issues[0].message
    assert "at maxSpeedupFactor" in info.value.issues[1].message


def test_topological_order_is_networkx_lexicographic_order(tmp_path: Path) -> None:
    import networkx as nx

    graph = _graph(tmp_path, MULTI)
    assert graph.topological() == list(nx.lexicographical_topological_sort(graph.dag))
    assert nx.is_directed_acyclic_graph(graph.dag)
    assert set(graph.dag.edges) == {(d, a) for a, s in graph.stages.items() for d in s.depends_on}
