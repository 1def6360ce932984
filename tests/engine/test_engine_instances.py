"""Instances inside a stage: per-instance diffs, partial updates, instance addresses.

The stand-ins say which instances a stage wants (`instances` in the control document)
and record them as a real provider does, so these tests pin the engine's decisions: a
digest that changes for one key replaces that instance (and the same key downstream),
not the stage; -target/-exclude/-replace/destroy -target and `state` take `ADDR["key"]`.
"""

from __future__ import annotations

import json

import pytest
from engine_helpers import Project, pipeline_config

from mactl.address import Address, instance_address, instance_key, parse_address, split_key
from mactl.errors import PlanError
from mactl.plan.definition import Change, InstanceChange
from mactl.plan.instances import InstanceFilters, diff_instances, forget_instance, instance_view

META = "metadata.src.snap1.t1.i0"
BF = "backfill.src.snap1.t1.i0.b0"


# -- addresses ---------------------------------------------------------------------------


def test_instance_addresses_parse_and_print_the_same() -> None:
    assert parse_address(META) == Address(META)
    assert parse_address(f'{META}["rw-pmc"]') == Address(META, "rw-pmc")
    assert parse_address(f"{META}[rw-pmc]") == Address(META, "rw-pmc")  # a shell ate the quotes
    assert str(Address(META, 'a"b')) == f'{META}["a\\"b"]'
    assert parse_address(str(Address(META, 'a"b'))).key == 'a"b'
    assert instance_address(META, "index_template:logs") == f'{META}["index_template:logs"]'
    assert instance_key("index", "logs") == "logs"
    assert instance_key("component_template", "base") == "component_template:base"
    assert split_key("pipeline:geoip") == ("pipeline", "geoip")
    assert split_key("logs") == ("index", "logs")
    assert Address(META, "rw-*").matches_key("rw-pmc") and not Address(META, "rw-*").matches_key("x")


@pytest.mark.parametrize("bad", [f'{META}["a"', f"{META}[]", '["a"]', f'{META}["a]', f"{META}[1]x"])
def test_a_malformed_instance_address_is_a_one_line_error_naming_the_flag(bad: str) -> None:
    with pytest.raises(PlanError) as err:
        parse_address(bad, flag="-target")
    assert err.value.message.startswith(f"-target {bad}")


def test_diff_instances_by_key() -> None:
    recorded = {"a": {"digest": "1"}, "b": {"digest": "1"}, "gone": {"digest": "1"}, "bad": {"status": "failed"}}
    desired = {"a": "1", "b": "2", "new": "1", "bad": "1"}
    got = {i.key: (i.action, i.reason) for i in diff_instances(recorded, desired, upstream={"a": "upstream x"})}
    assert got == {
        "a": ("replace", "upstream x"),
        "b": ("replace", "its definition changed"),
        "gone": ("rollback", "no longer selected"),
        "new": ("create", "new"),
        "bad": ("replace", "status failed"),
    }
    only_b = InstanceFilters(targets=[Address(META, "b")])
    got = {i.key: i.action for i in diff_instances(recorded, desired, filters=only_b)}
    assert got == {"a": "noop", "b": "replace", "gone": "noop", "new": "noop", "bad": "noop"}


def test_a_partial_change_scopes_only_its_changed_instances() -> None:
    instances = (InstanceChange("a", "replace"), InstanceChange("b", "noop"), InstanceChange("c", "rollback"))
    change = Change(META, "metadata", "update", "x", instances=instances, partial=True)
    assert change.instance_scope == {"a": "replace", "c": "rollback"}
    assert Change(META, "metadata", "update", "x", instances=instances).instance_scope is None
    with pytest.raises(ValueError):
        Change(META, "metadata", "replace", "x", partial=True)
    assert Change.from_dict(change.to_dict()) == change


def test_state_views_of_one_instance() -> None:
    outputs = {
        "created": [{"kind": "index", "name": "a"}, {"kind": "index", "name": "b"}],
        "definitions": {"a": {"settings": {}}, "b": {}},
        "report": {"items": [{"kind": "index", "name": "a", "outcome": "created"}]},
        "instances": {"a": {"digest": "1"}, "b": {"digest": "2"}},
        "sourceVersion": "7.10.2",
    }
    assert instance_view(outputs, "a") == {
        "created": [{"kind": "index", "name": "a"}],
        "definitions": {"settings": {}},
        "report.items": [{"kind": "index", "name": "a", "outcome": "created"}],
        "instances": {"digest": "1"},
    }
    forgot = forget_instance(outputs, "a")
    assert forgot["created"] == [{"kind": "index", "name": "b"}]
    assert forgot["instances"] == {"b": {"digest": "2"}}
    assert forgot["report"]["items"] == [] and forgot["sourceVersion"] == "7.10.2"


# -- the engine, through the CLI -----------------------------------------------------------


def _config() -> str:
    return pipeline_config(indices=1, replayer=False)


def _want(project: Project, meta: dict[str, str], bf: dict[str, str]) -> None:
    project.control(instances={META: meta, BF: bf})


def _applied(project: Project, meta: dict[str, str], bf: dict[str, str]) -> None:
    project.write(_config())
    _want(project, meta, bf)
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.out + r.err
    project.reset_calls()


def _plan(project: Project, *args: str) -> dict[str, dict]:
    r = project.plan_document(*args)
    assert r.code == 0, r.err
    return {c["address"]: c for c in json.loads(r.out)["resource_changes"]}


def _instances(change: dict) -> dict[str, str]:
    return {i["key"]: "/".join(i["actions"]) for i in change.get("instance_changes", [])}


def _scopes(project: Project) -> dict[str, dict | None]:
    return {c["address"]: c["scope"] for c in project.calls("applied")}


def test_one_changed_instance_replaces_only_it_and_the_same_key_downstream(project: Project) -> None:
    _applied(project, {"a": "1", "b": "1", "index_template:t": "1"}, {"a": "x", "b": "x"})
    state = project.state()["stages"]
    assert state[META]["outputs"]["instances"]["a"] == {"digest": "1", "status": "complete"}

    _want(project, {"a": "2", "b": "1", "index_template:t": "1"}, {"a": "x", "b": "x"})
    plan = _plan(project)
    assert plan[META]["change"]["actions"] == ["update"] and plan[META]["partial"]
    assert _instances(plan[META]) == {"a": "delete/create", "b": "no-op", "index_template:t": "no-op"}
    assert _instances(plan[BF]) == {"a": "delete/create", "b": "no-op"}
    reasons = {i["key"]: i["action_reason"] for i in plan[BF]["instance_changes"]}
    assert reasons["a"] == f'upstream {META}["a"] replaced'
    assert plan[BF]["instance_changes"][0]["address"] == f'{BF}["a"]'
    # what is built on them without instances of its own is redone as a whole
    assert plan["validate.src.t1"]["change"]["actions"] == ["delete", "create"]

    text = project.run("plan").out
    assert '-/+ ["a"]  # its definition changed' in text
    assert "# instances: 1 to replace, 2 unchanged" in text
    assert "Instances: 0 to create, 2 to replace, 0 to roll back." in text
    md = project.run("plan", "--markdown").out
    assert "| replace (instances) | 2 |" in md and '\n-/+       ["a"]  # its definition changed' in md

    # through a saved plan: the instances survive the plan file
    assert project.run("plan", "-out", "instances.plan").code == 0
    r = project.run("apply", "instances.plan")
    assert r.code == 0, r.out + r.err
    scopes = _scopes(project)
    assert scopes[META] == {"a": "replace"} and scopes[BF] == {"a": "replace"}
    assert [c["address"] for c in project.calls("rollback")] == ["validate.src.t1"]
    assert project.state()["stages"][META]["outputs"]["instances"]["a"]["digest"] == "2"
    assert "No changes." in project.run("plan").out


def test_a_new_index_plans_one_new_instance_and_a_gone_one_rolls_back(project: Project) -> None:
    _applied(project, {"a": "1", "b": "1"}, {"a": "x", "b": "x"})
    _want(project, {"a": "1", "c": "1"}, {"a": "x", "c": "x"})
    plan = _plan(project)
    assert _instances(plan[META]) == {"a": "no-op", "b": "delete", "c": "create"}
    assert _instances(plan[BF]) == {"a": "no-op", "b": "delete", "c": "create"}
    text = project.run("plan").out
    assert '+   ["c"]  # new' in text and '-   ["b"]  # no longer selected' in text
    assert project.run("apply", "-auto-approve").code == 0
    assert _scopes(project)[META] == {"b": "rollback", "c": "create"}
    assert set(project.state()["stages"][BF]["outputs"]["instances"]) == {"a", "c"}


def test_an_inputs_change_in_an_instance_field_is_a_partial_update_not_a_replace(project: Project) -> None:
    _applied(project, {"a": "1", "b": "1"}, {"a": "x", "b": "x"})
    project.write(_config().replace("{indices: {names: idx0}}", "{indices: {names: 'idx0,idx1'}}"))
    _want(project, {"a": "1", "b": "1", "idx1": "1"}, {"a": "x", "b": "x"})
    plan = _plan(project)
    assert plan[META]["change"]["actions"] == ["update"]
    assert plan[META]["action_reason"].startswith("inputs changed; 1 of 3 instance(s) change")
    assert _instances(plan[META])["idx1"] == "create"
    # -refresh=false cannot compute instances: the stage is replaced as before
    plan = _plan(project, "-refresh=false")
    assert plan[META]["change"]["actions"] == ["delete", "create"]


def test_target_exclude_and_replace_take_instance_addresses(project: Project) -> None:
    _applied(project, {"a": "1", "b": "1"}, {"a": "x", "b": "x"})
    _want(project, {"a": "2", "b": "2"}, {"a": "x", "b": "x"})
    plan = _plan(project, "-target", f'{META}["a"]')
    assert _instances(plan[META]) == {"a": "delete/create", "b": "no-op"}
    # not targeted, but built on the instance: the same key only
    assert _instances(plan[BF]) == {"a": "delete/create", "b": "no-op"}
    assert "not targeted (would replace)" in project.run("plan", "-target", f"{META}[a]").out
    assert project.run("apply", "-auto-approve", "-target", f'{META}["a"]').code == 0
    assert _scopes(project) == {META: {"a": "replace"}, BF: {"a": "replace"}, "validate.src.t1": None}
    assert project.state()["stages"][META]["outputs"]["instances"]["b"]["digest"] == "1"  # b still to do

    plan = _plan(project, "-exclude", f'{META}["b"]')
    assert _instances(plan[META]) == {"a": "no-op", "b": "no-op"}
    assert _instances(plan[BF]) == {"a": "no-op", "b": "no-op"}

    _want(project, {"a": "2", "b": "1"}, {"a": "x", "b": "x"})  # b done too (as if by hand)
    plan = _plan(project, "-replace", f'{BF}["b"]')
    assert _instances(plan[BF]) == {"a": "no-op", "b": "delete/create"}
    assert _instances(plan[META]) == {"a": "no-op", "b": "no-op"}

    r = project.run("plan", "-target", 'snapshot.src.snap1["x"]')
    assert r.code != 0 and "has no instances" in r.err and "Traceback" not in r.err


def test_destroy_target_an_instance_rolls_back_only_it(project: Project) -> None:
    _applied(project, {"a": "1", "b": "1"}, {"a": "x", "b": "x"})
    r = project.run("destroy", "-auto-approve", "-target", f'{META}["b"]')
    assert r.code == 0, r.out + r.err
    assert '-   ["b"]  # destroy' in r.out and "Instances: 0 to create, 0 to replace, 2 to roll back." in r.out
    assert _scopes(project) == {META: {"b": "rollback"}, BF: {"b": "rollback"}}
    stages = project.state()["stages"]
    assert set(stages[META]["outputs"]["instances"]) == {"a"}
    assert set(stages[BF]["outputs"]["instances"]) == {"a"}


def test_state_list_show_rm_take_instance_addresses(project: Project) -> None:
    _applied(project, {"a": "1", "b": "1"}, {"a": "x"})
    rows = json.loads(project.run("state", "list", "--json").out)
    addresses = [r["address"] for r in rows]
    assert f'{META}["a"]' in addresses and f'{BF}["a"]' in addresses
    shown = json.loads(project.run("state", "show", f'{META}["b"]').out)
    assert shown["instance_of"] == META and shown["key"] == "b" and shown["digest"] == "1"
    r = project.run("state", "rm", f'{META}["b"]')
    assert r.code == 0, r.err
    assert set(project.state()["stages"][META]["outputs"]["instances"]) == {"a"}
    r = project.run("state", "show", f'{META}["b"]')
    assert r.code != 0 and "no instance" in r.err
    # the instance is no longer the stage's: the next plan creates it anew
    assert _instances(_plan(project)[META]) == {"a": "no-op", "b": "create"}


def test_a_state_recorded_without_instances_plans_as_before(project: Project) -> None:
    project.write(_config())
    assert project.run("apply", "-auto-approve").code == 0  # stand-ins record no instances
    _want(project, {"a": "1"}, {"a": "x"})
    plan = _plan(project)
    assert plan[META]["change"]["actions"] == ["no-op"] and "instance_changes" not in plan[META]


def test_plan_output_with_instances_is_pinned(project: Project, snapshot) -> None:  # noqa: ANN001
    """One instance replaced, one new, one gone, eight unchanged: text, JSON and markdown."""
    same = {f"k{i}": "1" for i in range(8)}
    _applied(project, {**same, "a": "1", "gone": "1"}, {**same, "a": "x", "gone": "x"})
    _want(project, {**same, "a": "2", "new": "1"}, {**same, "a": "x", "new": "x"})
    text = project.run("plan")
    assert text.code == 0, text.err
    assert text.out == snapshot(name="text")
    doc = json.loads(project.plan_document().out)
    pinned = {
        "summary": doc["summary"],
        "instance_summary": doc["instance_summary"],
        "changes": [
            {
                k: c[k]
                for k in ("address", "action_reason", "instance_changes", "partial", "instances_known_after_apply")
            }
            for c in doc["resource_changes"]
            if "instance_changes" in c
        ],
    }
    assert pinned == snapshot(name="json")
    assert project.run("plan", "--markdown").out == snapshot(name="markdown")


def test_target_an_instance_of_a_new_stage_creates_only_it(project: Project) -> None:
    project.write(_config())
    _want(project, {"a": "1", "b": "1"}, {"a": "x", "b": "x"})
    r = project.run("apply", "-auto-approve", "-target", f'{META}["a"]')
    assert r.code == 0, r.out + r.err
    assert _scopes(project) == {"snapshot.src.snap1": None, META: {"a": "create"}}
    assert set(project.state()["stages"][META]["outputs"]["instances"]) == {"a"}
    plan = _plan(project)
    assert _instances(plan[META]) == {"a": "no-op", "b": "create"}
    assert plan[BF]["change"]["actions"] == ["create"] and not plan[BF]["partial"]
    # instances not computable (no plan_instances answer): the whole stage, said so
    project.control(instances={})
    r = project.run("plan", "-target", f'{BF}["a"]')
    assert r.code == 0, r.err
    assert "instances are known only after apply" in r.out and "# instances: (known after apply)" in r.out


def test_an_instance_address_that_cannot_be_honoured_is_refused(project: Project) -> None:
    _applied(project, {"a": "1", "b": "1"}, {"a": "x", "b": "x"})
    r = project.run("plan", "-refresh=false", "-replace", f'{META}["a"]')
    assert r.code != 0 and "cannot be computed now" in r.err and "Traceback" not in r.err
    project.write(_config().replace("{indices: {names: idx0}}", "{indices: {names: idx9}}"))
    r = project.run("plan", "-refresh=false", "-target", f'{META}["a"]')
    assert r.code != 0 and f"-target {META}[...]" in r.err


def test_a_failed_partial_apply_is_never_reported_as_success_and_is_redone_whole(project: Project) -> None:
    _applied(project, {"a": "1", "b": "1"}, {"a": "x", "b": "x"})
    project.control(instances={META: {"a": "2", "b": "1"}, BF: {"a": "x", "b": "x"}}, fail={META: "boom"})
    r = project.run("apply", "-auto-approve")
    assert r.code != 0 and "boom" in r.out + r.err
    assert project.state()["stages"][META]["status"] == "failed"
    project.control(instances={META: {"a": "2", "b": "1"}, BF: {"a": "x", "b": "x"}})
    plan = _plan(project)
    # a failed stage is tainted: replaced as a whole, with what is built on it
    assert plan[META]["change"]["actions"] == ["delete", "create"]
    assert plan[BF]["change"]["actions"] == ["delete", "create"]
