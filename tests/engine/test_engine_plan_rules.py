"""Planning rules: invalidation chains, -target/-exclude/-replace/-keep-downstream, lifecycle, refresh."""

from __future__ import annotations

import json

from engine_helpers import Project, pipeline_config


def plan_json(project: Project, *args: str) -> dict:
    r = project.plan_document(*args)
    assert r.code == 0, r.err
    return json.loads(r.out)


def actions(doc: dict) -> dict[str, str]:
    return {
        c["address"]: "/".join(c["change"]["actions"])
        for c in doc["resource_changes"]
        if c["change"]["actions"] != ["no-op"]
    }


def reasons(doc: dict) -> dict[str, str]:
    return {c["address"]: c["action_reason"] for c in doc["resource_changes"]}


def applied(project: Project, text: str) -> None:
    project.write(text)
    r = project.run("apply", "-auto-approve", "-refresh=false")
    assert r.code == 0, r.out + r.err


def test_replacing_field_invalidates_every_descendant_in_order(project: Project) -> None:
    applied(project, pipeline_config(targets=2, indices=2))
    # `indices` forces replacement of metadata; the block is stamped out for both targets
    project.write(
        pipeline_config(targets=2, indices=2).replace("{indices: {names: idx0}}", "{indices: {names: idx0-new}}")
    )
    doc = plan_json(project)
    got = actions(doc)
    assert got == {
        "metadata.src.snap1.t1.i0": "delete/create",
        "metadata.src.snap1.t2.i0": "delete/create",
        "backfill.src.snap1.t1.i0.b0": "delete/create",
        "backfill.src.snap1.t2.i0.b0": "delete/create",
        "replay.src.t1": "delete/create",
        "replay.src.t2": "delete/create",
        "validate.src.t1": "delete/create",
        "validate.src.t2": "delete/create",
    }
    why = reasons(doc)
    assert why["metadata.src.snap1.t1.i0"] == "inputs changed; indices.0.names.0 forces replacement"
    assert why["backfill.src.snap1.t1.i0.b0"] == "upstream metadata.src.snap1.t1.i0 replaced"
    assert why["replay.src.t1"] == "upstream metadata.src.snap1.t1.i0 replaced"
    text = project.run("plan").out
    assert "!! 8 stage(s) will be ROLLED BACK" in text
    assert '~ indices.0.names.0 = "idx0" -> "idx0-new"  # forces replacement' in text
    assert "Plan: 0 to create, 0 to update, 8 to replace, 0 to roll back." in text
    # the walk rolls back dependents first, then redoes in dependency order
    project.reset_calls()
    r = project.run("apply", "-auto-approve", "-parallelism", "1")
    assert r.code == 0
    rolled = [c["address"] for c in project.calls("rollback") if ".t1" in c["address"]]
    assert rolled == ["validate.src.t1", "replay.src.t1", "backfill.src.snap1.t1.i0.b0", "metadata.src.snap1.t1.i0"]


def test_in_place_update_does_not_invalidate(project: Project) -> None:
    applied(project, pipeline_config(indices=1))
    project.write(pipeline_config(indices=1, backfill_extra=", maxBatchDocs: 50"))
    doc = plan_json(project)
    assert actions(doc) == {"backfill.src.snap1.t1.i0.b0": "update"}
    attrs = doc["resource_changes"][
        [c["address"] for c in doc["resource_changes"]].index("backfill.src.snap1.t1.i0.b0")
    ]["change"]["attributes"]
    assert attrs == [
        {"path": "maxBatchDocs", "before": 1000, "after": 50, "forces_replacement": False, "sensitive": False}
    ]


def test_removed_stage_is_rolled_back_before_anything_else(project: Project) -> None:
    applied(project, pipeline_config(indices=2))
    project.write(pipeline_config(indices=1))
    doc = plan_json(project)
    assert actions(doc) == {"backfill.src.snap1.t1.i1.b0": "delete", "metadata.src.snap1.t1.i1": "delete"}
    order = [c["address"] for c in doc["resource_changes"]]
    assert order[:2] == ["backfill.src.snap1.t1.i1.b0", "metadata.src.snap1.t1.i1"]
    assert reasons(doc)["metadata.src.snap1.t1.i1"] == "no longer in the config"


def test_target_exclude_replace_keep_downstream(project: Project) -> None:
    config = pipeline_config(targets=2, indices=2)
    project.write(config)
    doc = plan_json(project, "-target", "backfill.src.snap1.t2.i1.b0")
    assert set(actions(doc)) == {
        "capture.src",
        "snapshot.src.snap1",
        "metadata.src.snap1.t2.i1",
        "backfill.src.snap1.t2.i1.b0",
    }
    doc = plan_json(project, "--exclude", "metadata.src.snap1.t1.i0")
    assert not {"metadata.src.snap1.t1.i0", "backfill.src.snap1.t1.i0.b0", "replay.src.t1", "validate.src.t1"} & set(
        actions(doc)
    )
    assert "replay.src.t2" in actions(doc)
    r = project.run("plan", "-target", "backfil.src.snap1.t2.i1.b0")
    assert r.code == 1 and "no stage has that address" in r.err and "did you mean" in r.err

    applied(project, config)
    doc = plan_json(project, "-replace", "snapshot.src.snap1")
    got = actions(doc)
    assert got["snapshot.src.snap1"] == "delete/create" and len(got) == 13  # all but capture
    assert reasons(doc)["snapshot.src.snap1"] == "replacement requested with -replace"
    assert reasons(doc)["validate.src.t2"] == "upstream snapshot.src.snap1 replaced"

    doc = plan_json(project, "-replace", "metadata.src.snap1.t1.i0", "-keep-downstream", "metadata.src.snap1.t1.i0")
    assert actions(doc) == {"metadata.src.snap1.t1.i0": "delete/create"}
    assert any("-keep-downstream metadata.src.snap1.t1.i0" in w and "NOT invalidated" in w for w in doc["warnings"])
    text = project.run(
        "plan", "-replace", "metadata.src.snap1.t1.i0", "--keep-downstream", "metadata.src.snap1.t1.i0"
    ).out
    assert "WARNING: -keep-downstream" in text

    r = project.run("plan", "-replace", "snapshot.src.snap1", "-exclude", "replay.src.t1")
    assert r.code == 1 and "would be invalidated by the replacement of snapshot.src.snap1" in r.err


def test_prevent_rollback_fails_the_plan_naming_the_stage(project: Project) -> None:
    applied(project, pipeline_config(indices=1, backfill_extra=", lifecycle: {preventRollback: true}"))
    project.write(
        pipeline_config(
            indices=1,
            backfill_extra=", lifecycle: {preventRollback: true}, rollbackMode: recreate, indices: {names: other}",
        )
    )
    r = project.run("plan")
    assert r.code == 1
    assert "lifecycle.preventRollback" in r.err and "backfill.src.snap1.t1.i0.b0" in r.err
    assert "Traceback" not in r.err


def test_ignore_changes_leaves_a_field_out_of_the_diff(project: Project) -> None:
    applied(project, pipeline_config(indices=1, backfill_extra=", lifecycle: {ignoreChanges: [maxBatchDocs]}"))
    project.write(
        pipeline_config(indices=1, backfill_extra=", maxBatchDocs: 7, lifecycle: {ignoreChanges: [maxBatchDocs]}")
    )
    assert actions(plan_json(project)) == {}


def test_refresh_reports_changes_outside_mactl_and_refresh_false_never_reads(project: Project) -> None:
    applied(project, pipeline_config(indices=1, replayer=False))
    project.control(read={"metadata.src.snap1.t1.i0": None, "backfill.src.snap1.t1.i0.b0": {"applied": "someone else"}})
    project.reset_calls()
    doc = plan_json(project, "-refresh=false")
    assert actions(doc) == {} and not project.calls("read")
    doc = plan_json(project)
    assert project.calls("read")
    # a stage whose result is gone as a whole is created again, and what was built on it is redone
    assert actions(doc) == {
        "metadata.src.snap1.t1.i0": "create",
        "backfill.src.snap1.t1.i0.b0": "delete/create",
        "validate.src.t1": "delete/create",
    }
    assert reasons(doc)["metadata.src.snap1.t1.i0"] == "changed outside mactl: it no longer exists"
    assert reasons(doc)["backfill.src.snap1.t1.i0.b0"] == (
        "upstream metadata.src.snap1.t1.i0 no longer exists and is created again"
    )
    doc = plan_json(project, "-refresh-only")
    assert actions(doc) == {"metadata.src.snap1.t1.i0": "read", "backfill.src.snap1.t1.i0.b0": "read"}
    r = project.run("apply", "-refresh-only", "-auto-approve")
    assert r.code == 0, r.err
    assert project.state()["stages"]["backfill.src.snap1.t1.i0.b0"]["outputs"] == {"applied": "someone else"}


def test_adding_a_target_adds_exactly_its_stages(project: Project) -> None:
    applied(project, pipeline_config(targets=1, indices=2))
    project.write(pipeline_config(targets=2, indices=2))
    got = actions(plan_json(project))
    assert set(got.values()) == {"create"}
    assert sorted(got) == sorted(
        [
            "metadata.src.snap1.t2.i0",
            "metadata.src.snap1.t2.i1",
            "backfill.src.snap1.t2.i0.b0",
            "backfill.src.snap1.t2.i1.b0",
            "replay.src.t2",
            "validate.src.t2",
        ]
    )


def test_detailed_exitcode(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    assert project.run("plan", "-detailed-exitcode").code == 2
    assert project.run("plan", "--detailed-exitcode", "-target", "nope").code == 1
    assert project.run("apply", "-auto-approve").code == 0
    assert project.run("plan", "-detailed-exitcode").code == 0
