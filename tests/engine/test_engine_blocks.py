"""`moved` and `removed` blocks: renames keep the state, removals forget without rolling back."""

from __future__ import annotations

import json

import pytest
from engine_helpers import Project, pipeline_config


def applied(project: Project, text: str) -> None:
    project.write(text)
    r = project.run("apply", "-auto-approve", "-refresh=false")
    assert r.code == 0, r.out + r.err
    project.reset_calls()


def plan_json(project: Project) -> dict:
    r = project.plan_document("-refresh=false")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_renamed_migration_moves_its_stages_and_their_dependents_without_replacing(project: Project) -> None:
    applied(project, pipeline_config(indices=2))
    before = project.state()["stages"]
    renamed = pipeline_config(indices=2).replace("name: i0", "name: j0")
    project.write(renamed + "moved:\n  - {kind: migration, from: i0, to: j0}\n")

    r = project.run("plan", "-refresh=false", "-detailed-exitcode")
    assert r.code == 2, r.err
    assert "# metadata.src.snap1.t1.i0 has moved to metadata.src.snap1.t1.j0" in r.out
    assert "# backfill.src.snap1.t1.i0.b0 has moved to backfill.src.snap1.t1.j0.b0" in r.out
    assert "REPLACED" not in r.out and "ROLLED BACK" not in r.out
    assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to roll back, 2 to move." in r.out
    doc = plan_json(project)
    moved = {c["address"]: c["previous_address"] for c in doc["resource_changes"] if "previous_address" in c}
    assert moved == {
        "metadata.src.snap1.t1.j0": "metadata.src.snap1.t1.i0",
        "backfill.src.snap1.t1.j0.b0": "backfill.src.snap1.t1.i0.b0",
    }
    assert {c["change"]["actions"][0] for c in doc["resource_changes"]} == {"no-op"}
    assert doc["summary"]["move"] == 2

    r = project.run("apply", "-auto-approve", "-refresh=false")
    assert r.code == 0, r.out + r.err
    assert "2 moved" in r.out
    assert project.calls("apply") == [] and project.calls("rollback") == []  # state only
    after = project.state()["stages"]
    assert set(after) == {a.replace(".i0", ".j0") for a in before}
    assert after["metadata.src.snap1.t1.j0"]["outputs"] == before["metadata.src.snap1.t1.i0"]["outputs"]
    assert after["backfill.src.snap1.t1.j0.b0"]["depends_on"] == ["metadata.src.snap1.t1.j0"]
    assert "backfill.src.snap1.t1.j0.b0" in after["replay.src.t1"]["depends_on"]
    assert "backfill.src.snap1.t1.i0.b0" not in after["replay.src.t1"]["depends_on"]
    history = project.state()["history"]
    assert any(
        h["operation"] == "move" and "metadata.src.snap1.t1.i0 -> metadata.src.snap1.t1.j0" in h["detail"]
        for h in history
    )
    # the moved block can stay: the old addresses are gone, nothing is left to do
    r = project.run("plan", "-refresh=false", "-detailed-exitcode")
    assert r.code == 0 and "No changes." in r.out, r.out


def test_renamed_target_and_snapshot_entry_keep_their_state_and_snapshot_name(project: Project) -> None:
    applied(project, pipeline_config(indices=1))
    snapshot_inputs = project.state()["stages"]["snapshot.src.snap1"]["inputs"]
    renamed = pipeline_config(indices=1).replace("name: t1", "name: prod").replace("name: snap1", "name: nightly")
    project.write(
        renamed + "moved:\n  - {kind: target, from: t1, to: prod}\n  - {kind: snapshot, from: snap1, to: nightly}\n"
    )
    r = project.run("apply", "-auto-approve", "-refresh=false")
    assert r.code == 0, r.out + r.err
    assert project.calls("apply") == [] and project.calls("rollback") == []
    stages = project.state()["stages"]
    assert "metadata.src.nightly.prod.i0" in stages and "replay.src.prod" in stages
    assert not any(".t1" in a or ".snap1" in a for a in stages)
    # the snapshot on the cluster keeps its name: nothing is retaken
    assert stages["snapshot.src.nightly"]["inputs"]["snapshotName"] == snapshot_inputs["snapshotName"]
    assert stages["metadata.src.nightly.prod.i0"]["inputs"]["target"]["name"] == "prod"
    r = project.run("plan", "-refresh=false", "-detailed-exitcode")
    assert r.code == 0 and "No changes." in r.out, r.out


def test_moving_onto_a_recorded_stage_fails_the_plan_naming_both(project: Project) -> None:
    applied(project, pipeline_config(indices=2))
    only_i1 = pipeline_config(indices=1).replace("i0", "i1")
    project.write(only_i1 + "moved:\n  - {kind: migration, from: i0, to: i1}\n")
    r = project.run("plan", "-refresh=false")
    assert r.code == 1
    assert (
        "cannot move metadata.src.snap1.t1.i0 to metadata.src.snap1.t1.i1: "
        "metadata.src.snap1.t1.i1 is already in the state" in r.err
    ), r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        ("  - {kind: migration, from: i0, to: i9}\n", "moved[0].from: migration 'i0' is still in the config"),
        ("  - {kind: migration, from: gone, to: i9}\n", "moved[0].to: no migration named 'i9' in the config"),
        (
            "  - {from: metadata.src.snap1.t1.x, to: backfill.src.snap1.t1.i0.b0}\n",
            "moved[0]: cannot move a metadata stage to a backfill stage",
        ),
        ("  - {from: nonsense, to: metadata.src.snap1.t1.i0}\n", "moved[0].from: 'nonsense' is not a stage address"),
        (
            "  - {kind: target, from: a, to: b}\n  - {kind: target, from: b, to: a}\n",
            "moved[0]: the moved blocks make a cycle: a → b → a",
        ),
        ("  - {kind: stage, from: a, to: b}\n", "moved[0].kind"),
    ],
)
def test_invalid_moved_blocks_fail_validate_with_one_line_naming_the_block(
    project: Project, blocks: str, expected: str
) -> None:
    project.write(pipeline_config(indices=1) + "moved:\n" + blocks)
    r = project.run("validate")
    assert r.code == 1
    assert expected in r.err, r.err
    assert "Traceback" not in r.err


def test_removed_block_forgets_without_rolling_back_and_without_it_the_stage_is_rolled_back(
    project: Project,
) -> None:
    applied(project, pipeline_config(indices=2))
    one = pipeline_config(indices=1)
    project.write(one + 'removed:\n  - {from: "*.src.snap1.t1.i1*"}\n')
    r = project.run("plan", "-refresh=false")
    assert r.code == 0, r.err
    assert "# metadata.src.snap1.t1.i1 will be FORGOTTEN" in r.out
    assert "# backfill.src.snap1.t1.i1.b0 will be FORGOTTEN" in r.out
    assert "ROLLED BACK" not in r.out
    assert "0 to roll back, 2 to forget." in r.out
    doc = plan_json(project)
    forget = {c["address"] for c in doc["resource_changes"] if c["change"]["actions"] == ["forget"]}
    assert forget == {"metadata.src.snap1.t1.i1", "backfill.src.snap1.t1.i1.b0"}

    r = project.run("apply", "-auto-approve", "-refresh=false")
    assert r.code == 0, r.out + r.err
    assert "2 forgotten" in r.out
    assert project.calls("rollback") == []
    stages = project.state()["stages"]
    assert "metadata.src.snap1.t1.i1" not in stages and "backfill.src.snap1.t1.i1.b0" not in stages
    assert "metadata.src.snap1.t1.i0" in stages

    # the same removal without a block, and a block with destroy: true, roll back as before
    for tail in ("", 'removed:\n  - {from: "*.i0*", lifecycle: {destroy: true}}\n'):
        applied(project, pipeline_config(indices=2))
        project.write(one.replace("i0", "i5") + tail)
        r = project.run("plan", "-refresh=false")
        assert "# metadata.src.snap1.t1.i0 will be ROLLED BACK" in r.out, r.out
        assert "FORGOTTEN" not in r.out


def test_removed_block_for_a_stage_still_in_the_config_fails_validate(project: Project) -> None:
    project.write(pipeline_config(indices=1) + "removed:\n  - {from: metadata.src.snap1.t1.i0}\n")
    r = project.run("validate")
    assert r.code == 1
    assert "removed[0].from: 'metadata.src.snap1.t1.i0' is still in the config" in r.err, r.err
