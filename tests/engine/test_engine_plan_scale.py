"""The seed's shape at scale: what the planner relies on to stay linear (issue 20, item 3).

A snapshot entry's filter listing many indices sits in every metadata and backfill stage
below it. These tests pin the behaviour that keeps a plan of such a config linear without
hiding anything: the text plan shows the shared list in full once and refers to it
elsewhere; a plan read back from its file shows the same; the diff of one renamed index
among many shows only that name; `ValueDiffer` answers exactly as DeepDiff does; a big
list is hashed on its own (old states keep matching); the filter is validated once.
(Timings are `bench/plan_scale.py`'s job, not a test's.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from deepdiff import DeepDiff
from mactl.state.document import StageRecord, StateDocument

from mactl.config.loader import load_config
from mactl.graph.expand import StageGraph, expand
from mactl.masking import DIGEST_PREFIX, inputs_digest, legacy_inputs_digest, same_digest, shared_digests
from mactl.plan.builder import PlanOptions, build_plan, prepare
from mactl.plan.planfile import load_plan, save_plan
from mactl.plan.planfile_values import restore
from mactl.plan.render_text import render_text
from mactl.plan.shared_values import MIN_ITEMS
from mactl.plan.value_diff import ValueDiffer

INDICES = 80  # more than MIN_ITEMS, so the snapshot entry's filter is a shared value
NAMES = [f"logs-{i:03d}" for i in range(INDICES)]


def _config(folder: Path, names: list[str], migrations: int = 3) -> Path:
    """The seed's shape, small: one entry filtering `names`, a migration per index, 2 targets."""
    config = {
        "targets": [{"name": f"t{t}", "endpoint": f"http://target{t}:9200"} for t in (1, 2)],
        "source-migration-configurations": [
            {
                "source": {
                    "name": "src",
                    "endpoint": "http://source:9200",
                    "snapshotRepository": {"type": "fs", "location": "/snapshots/scale"},
                },
                "snapshot-and-migration-configs": [
                    {
                        "name": "snap1",
                        "indices": {"names": ",".join(names), "mode": "include"},
                        "migrations": [
                            {
                                "name": f"i{i}",
                                "metadata": {"indices": {"names": NAMES[i]}},
                                "documentBackfillConfigs": [{"name": "b0", "indices": {"names": NAMES[i]}}],
                            }
                            for i in range(migrations)
                        ],
                    }
                ],
            }
        ],
    }
    path = folder / "scale.json"
    path.write_bytes(orjson.dumps(config))
    return path


def _graph(folder: Path, names: list[str] = NAMES) -> StageGraph:
    return expand(load_config(_config(folder, names), env={}).config)


def _applied(graph: StageGraph) -> StateDocument:
    """A state with every stage applied, its inputs read back from JSON as a real state's are."""
    records = {
        address: StageRecord(
            type=d.stage.type,
            inputs=orjson.loads(orjson.dumps(d.masked)),
            inputs_digest=d.digest,
            status="complete",
            depends_on=list(d.stage.depends_on),
        )
        for address, d in prepare(graph, []).items()
    }
    return StateDocument(stages=records, serial=1)


def test_a_shared_filter_is_shown_in_full_once_and_referenced_by_every_stage_holding_it(tmp_path: Path) -> None:
    plan = build_plan(_graph(tmp_path), None, PlanOptions(refresh=False))
    text = render_text(plan)
    full = orjson.dumps(NAMES).decode()
    assert text.count(full) == 1, "the shared list is printed exactly once"
    reference = f"(shared value #1: {INDICES} items)"
    holders = [c for c in plan.changes if c.type in ("snapshot", "metadata", "backfill")]
    assert len(holders) == 1 + 2 * 3 * 2  # the snapshot, then metadata and backfill per migration and target
    assert text.count(reference) == len(holders)
    assert f"# shared value #1: {INDICES} items, in {len(holders)} places (first: snapshot.src.snap1)" in text
    assert f"  #1 = {full}" in text
    # The section comes before the actions, so a reader meets the value before its references.
    assert text.index(f"  #1 = {full}") < text.index("mactl will perform the following actions:")
    # Each stage's own (small) filter is printed where it is, in full.
    metadata = text[text.index('stage "metadata.src.snap1.t1.i1"') :]
    line = next(line for line in metadata.splitlines() if line.strip().startswith("+ indices ="))
    assert line.strip() == (
        f'+ indices = [{{"mode":"include","names":{reference}}},{{"mode":"include","names":["logs-001"]}}]'
    )


def test_a_small_config_prints_every_value_where_it_is(tmp_path: Path) -> None:
    names = NAMES[: MIN_ITEMS - 1]
    text = render_text(build_plan(_graph(tmp_path, names), None, PlanOptions(refresh=False)))
    assert "shared value" not in text.lower()
    assert text.count(orjson.dumps(names).decode()) == 1 + 2 * 3 * 2


def test_a_plan_read_back_from_its_file_shows_the_same_text(tmp_path: Path) -> None:
    """Read back, the stages hold equal copies, not one shared object: found by content."""
    plan = build_plan(_graph(tmp_path), None, PlanOptions(refresh=False))
    save_plan(plan, tmp_path / "plan.bin")
    assert render_text(load_plan(tmp_path / "plan.bin")) == render_text(plan)


def test_one_renamed_index_among_many_is_the_whole_diff_of_every_stage_below(tmp_path: Path) -> None:
    doc = _applied(_graph(tmp_path))
    renamed = [*NAMES[:40], "logs-renamed", *NAMES[41:]]
    plan = build_plan(_graph(tmp_path, renamed), doc, PlanOptions(refresh=False))
    changed = [c for c in plan.changes if c.action != "noop"]
    assert {c.type for c in changed} >= {"snapshot", "metadata", "backfill"}
    for change in changed:
        if change.type in ("metadata", "backfill", "snapshot"):
            assert [(a.path, a.before, a.after) for a in change.attributes] == [
                ("indices.0.names.40", "logs-040", "logs-renamed")
            ], change.address
    text = render_text(plan)
    assert '~ indices.0.names.40 = "logs-040" -> "logs-renamed"' in text
    assert orjson.dumps(NAMES).decode() not in text  # the unchanged rest of the list is not printed


def _deepdiff_levels(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[tuple[Any, ...], Any, Any]]:
    """What the planner asked DeepDiff before `ValueDiffer`: the reference answer."""
    diff = DeepDiff(before, after, view="tree", verbose_level=2)
    found = []
    for levels in diff.values():
        for level in levels:
            parts = level.path(output_format="list")
            t1 = None if type(level.t1).__name__ == "NotPresent" else level.t1
            t2 = None if type(level.t2).__name__ == "NotPresent" else level.t2
            found.append((tuple(parts), t1, t2))
    return sorted(found, key=repr)


BIG = [f"n{i}" for i in range(100)]
PAIRS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "key added and removed": ({"a": 1, "b": {"x": 1}}, {"a": 1, "c": [1, 2]}),
    "nested value": ({"a": {"b": {"c": "x", "d": 1}}}, {"a": {"b": {"c": "y", "d": 1}}}),
    "int to float is a type change": ({"a": 30, "b": [1, 2]}, {"a": 30.0, "b": [1, 2.0]}),
    "bool and int": ({"a": True, "b": [0, 1]}, {"a": 1, "b": [False, 1]}),
    "dict to list": ({"a": {"x": 1}}, {"a": [1]}),
    "list of filters, one name changed": (
        {"indices": [{"names": BIG, "mode": "include"}, {"names": ["n1"], "mode": "include"}]},
        {"indices": [{"names": [*BIG[:50], "zz", *BIG[51:]], "mode": "include"}, {"names": ["n1"], "mode": "exclude"}]},
    ),
    "names inserted in the middle": ({"n": BIG}, {"n": [*BIG[:10], "new", *BIG[10:]]}),
    "list of dicts grows": ({"l": [{"a": 1}]}, {"l": [{"a": 2}, {"b": 3}]}),
    "list of dicts shrinks": ({"l": [{"a": 1}, {"a": 2}, {"a": 3}]}, {"l": [{"a": 1}]}),
    "mixed list": ({"l": [1, {"a": 1}, "x"]}, {"l": [1, {"a": 2}, "y"]}),
    "equal": ({"a": [{"b": BIG}]}, {"a": [{"b": list(BIG)}]}),
    "none and values": ({"a": None, "b": "x"}, {"a": "x", "b": None}),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_value_differ_answers_as_deepdiff_does(name: str) -> None:
    before, after = PAIRS[name]
    differ = ValueDiffer()
    for _ in range(2):  # the second time from its memo
        assert sorted(differ.changed_levels(before, after), key=repr) == _deepdiff_levels(before, after)


def test_a_big_list_is_hashed_on_its_own_and_old_digests_still_match() -> None:
    small = {"a": 1, "indices": [{"names": BIG[:10]}]}
    assert inputs_digest(small) == hashlib.sha256(orjson.dumps(small, option=orjson.OPT_SORT_KEYS)).hexdigest()
    big = {"a": 1, "indices": [{"names": BIG}]}
    digest = inputs_digest(big)
    assert digest.startswith(DIGEST_PREFIX)
    with shared_digests():
        assert inputs_digest(big) == digest
        assert inputs_digest({**big, "a": 1}) == digest
    assert inputs_digest({"a": 1, "indices": [{"names": [*BIG[:-1], "other"]}]}) != digest
    # A state recorded before: its digest of these inputs is the legacy one.
    assert same_digest(legacy_inputs_digest(big), digest, big)
    assert not same_digest(legacy_inputs_digest({"a": 2}), digest, big)


def test_an_old_state_of_a_big_filter_plans_no_change_and_resumes_its_checkpoint(tmp_path: Path) -> None:
    graph = _graph(tmp_path)
    doc = _applied(graph)
    for record in doc.stages.values():
        record.inputs_digest = legacy_inputs_digest(record.inputs)
    assert not build_plan(graph, doc, PlanOptions(refresh=False)).has_changes
    # A stage interrupted with a checkpoint resumes only when its digest says "same inputs".
    stopped = "backfill.src.snap1.t1.i0.b0"
    doc.stages[stopped].status = "failed"
    doc.stages[stopped].checkpoint = {"done": 1}
    change = next(c for c in build_plan(graph, doc, PlanOptions(refresh=False)).changes if c.address == stopped)
    assert (change.action, change.resume) == ("update", True)


def test_the_shared_filter_is_validated_once_and_typed_once(tmp_path: Path) -> None:
    graph = _graph(tmp_path)
    typed = graph.typed_inputs
    holders = [a for a, s in graph.stages.items() if s.type in ("metadata", "backfill", "snapshot")]
    assert len(holders) == 13 and all(a in typed for a in graph.stages)
    first = typed[holders[0]].indices[0]  # type: ignore[attr-defined]
    assert first.names == NAMES
    assert all(typed[a].indices[0] is first for a in holders)  # type: ignore[attr-defined]


def test_markdown_parts_carry_the_shared_value_once_in_part_one(tmp_path: Path) -> None:
    from mactl.plan.render_markdown import render_markdown_parts

    plan = build_plan(_graph(tmp_path), None, PlanOptions(refresh=False))
    parts = render_markdown_parts(plan, limit=4000)
    assert len(parts) > 1
    full = orjson.dumps(NAMES).decode()
    assert full in parts[0] and sum(part.count(full) for part in parts) == 1
    assert sum(part.count(f"(shared value #1: {INDICES} items)") for part in parts) == 13


def test_a_plan_file_stores_a_big_list_once_and_reads_back_the_same_plan(tmp_path: Path) -> None:
    plan = build_plan(_graph(tmp_path), None, PlanOptions(refresh=False))
    save_plan(plan, tmp_path / "plan.bin")
    raw = orjson.loads((tmp_path / "plan.bin").read_bytes())
    assert raw["file_version"] == 3 and raw["shared_values"] == [NAMES]
    assert (tmp_path / "plan.bin").read_bytes().count(b'"logs-079"') == 1
    assert len(raw["shared_refs"]) == 13
    loaded = load_plan(tmp_path / "plan.bin")
    assert loaded == plan
    holders = [c for c in loaded.changes if c.type in ("snapshot", "metadata", "backfill")]
    held = [c.after["indices"][0]["names"] for c in holders if c.after]
    assert len(held) == 13 and all(names is held[0] for names in held)  # one object again, as planned


def test_a_version_2_plan_file_still_reads(tmp_path: Path) -> None:
    plan = build_plan(_graph(tmp_path), None, PlanOptions(refresh=False))
    save_plan(plan, tmp_path / "plan.bin")
    raw = orjson.loads((tmp_path / "plan.bin").read_bytes())
    restore(raw["changes"], raw["shared_values"], raw["shared_refs"])  # as version 2 wrote it
    raw.update(file_version=2)
    del raw["shared_values"], raw["shared_refs"]
    (tmp_path / "old.bin").write_bytes(orjson.dumps(raw))
    assert load_plan(tmp_path / "old.bin") == plan


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        ([[0, ["after", "nowhere"], 0]], "shared_refs[0]: no place 'nowhere'"),
        ([[99999, ["after"], 0]], "shared_refs[0]: no change 99999"),
        ([[0, ["after"], 7]], "shared_refs[0]: no shared value 7"),
        ([[0, [], 0]], "shared_refs[0] is not [change, path, value]"),
        ("x", "shared_refs is not a list"),
    ],
)
def test_a_damaged_shared_ref_is_refused_naming_it(tmp_path: Path, refs: Any, message: str) -> None:
    from mactl.errors import PlanError

    plan = build_plan(_graph(tmp_path), None, PlanOptions(refresh=False))
    save_plan(plan, tmp_path / "plan.bin")
    raw = orjson.loads((tmp_path / "plan.bin").read_bytes())
    raw["shared_refs"] = refs
    (tmp_path / "bad.bin").write_bytes(orjson.dumps(raw))
    with pytest.raises(PlanError, match="is damaged") as info:
        load_plan(tmp_path / "bad.bin")
    assert message in str(info.value)
