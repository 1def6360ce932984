"""Saved plans (-out), stale-plan refusal, secrets never written, variables precedence via the CLI."""

from __future__ import annotations

import json

import pytest
from engine_helpers import Project, pipeline_config

SECRET = "s3cr3t-Hunter2-do-not-leak"
SECRET_CONFIG = pipeline_config(
    indices=1,
    variables="  target_password: {type: string, sensitive: true}\n  batch: {type: number, default: 100}\n",
    target_auth="{type: basic, username: admin, password: '{{ var.target_password }}'}",
    backfill_extra=", maxBatchDocs: '{{ var.batch }}'",
)


def test_saved_plan_applies_exactly_that_plan(project: Project) -> None:
    project.write(pipeline_config(targets=2, indices=1))
    r = project.run("plan", "-target", "metadata.src.snap1.t2.i0", "-out", "p.plan")
    assert r.code == 0 and "Plan: 3 to create" in r.out
    r = project.run("show", "p.plan")
    assert r.code == 0 and "Plan: 3 to create" in r.out
    shown = json.loads(project.run("show", "p.plan", "--json").out)
    assert [c["address"] for c in shown["resource_changes"]] == [
        "capture.src",
        "snapshot.src.snap1",
        "metadata.src.snap1.t2.i0",
    ]
    r = project.run("apply", "p.plan")
    assert r.code == 0, r.err
    assert sorted(project.state()["stages"]) == ["capture.src", "metadata.src.snap1.t2.i0", "snapshot.src.snap1"]


def test_stale_plan_is_refused_saying_why(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    assert project.run("plan", "-out", "old.plan").code == 0
    assert project.run("apply", "-auto-approve", "-target", "capture.src").code == 0
    project.reset_calls()
    r = project.run("apply", "old.plan")
    assert r.code == 1
    assert "the plan is stale: it was made for state lineage" not in r.err  # it had no lineage yet
    assert "the state moved from serial 0 to" in r.err
    assert not project.calls("apply")

    assert project.run("plan", "-out", "fresh.plan").code == 0
    project.write(pipeline_config(indices=1, backfill_extra=", maxBatchDocs: 5"))
    r = project.run("apply", "fresh.plan")
    assert r.code == 1 and "the config (or a variable) changed since it was made" in r.err

    project.write(pipeline_config(indices=1))
    assert project.run("plan", "-out", "other.plan").code == 0
    (project.root / ".mactl" / "state.json").unlink()
    import shutil

    shutil.rmtree(project.root / ".mactl" / "backups", ignore_errors=True)
    assert project.run("apply", "-auto-approve", "-target", "capture.src").code == 0  # a new lineage
    r = project.run("apply", "other.plan")
    assert r.code == 1 and "it was made for state lineage" in r.err
    assert not project.calls("rollback")


def test_apply_from_plan_file_with_flags_is_refused(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    assert project.run("plan", "-out", "p.plan").code == 0
    r = project.run("apply", "p.plan", "-target", "capture.src")
    assert r.code == 1 and "cannot be used with a saved plan" in r.err
    r = project.run("apply", "missing.plan")
    assert r.code == 1 and "does not exist" in r.err and "Traceback" not in r.err


def test_secrets_never_reach_plans_plan_files_state_or_logs(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write(SECRET_CONFIG)
    project.control(log_secret=f"password={SECRET}")
    monkeypatch.setenv("MACTL_VAR_target_password", SECRET)
    outputs = [project.run("plan", *fmt).out for fmt in ((), ("--markdown",))]
    outputs.append(project.plan_document().out)
    r = project.run("plan", "-out", "s.plan")
    assert r.code == 0
    for text in outputs:
        assert SECRET not in text
        assert "admin" not in text  # a cluster is shown by name, endpoint and auth type only
    assert SECRET not in project.run("plan", "-json").out  # the stream has no values of a create
    assert SECRET not in (project.root / "s.plan").read_text()
    assert SECRET not in project.run("show", "s.plan", "--json").out

    # the secret is not in the file, so applying it needs the secret again
    monkeypatch.delenv("MACTL_VAR_target_password")
    r = project.run("apply", "s.plan")
    assert r.code == 1 and "sensitive variable(s) target_password" in r.err and "MACTL_VAR_target_password" in r.err
    monkeypatch.setenv("MACTL_VAR_target_password", SECRET)
    r = project.run("apply", "s.plan")
    assert r.code == 0, r.err
    assert SECRET not in r.out + r.err
    for path in project.root.joinpath(".mactl").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert any(p.name == "stage.log" for p in project.root.joinpath(".mactl").rglob("*"))
    # credentials are not stored at all, not even masked: the cluster's name, endpoint and auth type
    target = project.state()["stages"]["backfill.src.snap1.t1.i0.b0"]["inputs"]["target"]
    assert target == {"name": "t1", "endpoint": "http://target1:9200", "auth": {"type": "basic"}, "insecure": False}
    assert "(sensitive)" not in json.dumps(project.state()["stages"])

    # so a rotated password is not a change: it is read from the config when a stage runs
    monkeypatch.setenv("MACTL_VAR_target_password", SECRET + "-rotated")
    r = project.run("plan", "-detailed-exitcode")
    assert r.code == 0 and "No changes." in r.out, r.out


def test_variables_precedence_end_to_end(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write(SECRET_CONFIG)
    monkeypatch.setenv("MACTL_VAR_target_password", SECRET)
    project.write("batch: 300\n", "a.yaml")
    project.write('{"batch": 400}', "b.json")

    def batch(*args: str) -> int:
        r = project.plan_document(*args)
        assert r.code == 0, r.err
        doc = json.loads(r.out)
        change = next(c for c in doc["resource_changes"] if c["type"] == "backfill")
        return change["change"]["after"]["maxBatchDocs"]

    assert batch() == 100  # the default
    monkeypatch.setenv("MACTL_VAR_batch", "200")
    assert batch() == 200  # env beats the default
    assert batch("-var-file", "a.yaml") == 300  # a var-file beats env
    assert batch("-var-file", "a.yaml", "--var-file", "b.json") == 400  # later files win
    assert batch("-var-file", "b.json", "-var", "batch=500") == 500  # -var beats files
    assert batch("-var", "batch=500", "--var", "batch=600", "-var-file", "a.yaml") == 600  # later -var wins
    r = project.run("plan", "-var", "nope=1")
    assert r.code == 1 and "nope" in r.err and "Traceback" not in r.err
    # the plan records the variables used, the sensitive one masked
    doc = json.loads(project.plan_document("-var", "batch=7").out)
    assert doc["variables"] == {"target_password": "(sensitive)", "batch": 7}


def test_a_removed_stage_is_rolled_back_with_its_real_credentials(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACTL_VAR_target_password", SECRET)
    two = SECRET_CONFIG.replace(
        "            documentBackfillConfigs: [{name: b0, maxBatchDocs: '{{ var.batch }}'}]",
        "            documentBackfillConfigs: [{name: b0, maxBatchDocs: '{{ var.batch }}'}, {name: b1}]",
    )
    project.write(two)
    assert project.run("apply", "-auto-approve").code == 0
    assert "backfill.src.snap1.t1.i0.b1" in project.state()["stages"]
    project.write(SECRET_CONFIG)
    project.reset_calls()
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.err
    rollbacks = project.calls("rollback")
    assert [c["address"] for c in rollbacks] == ["backfill.src.snap1.t1.i0.b1"]
    assert rollbacks[0]["password_is_real"] is True  # restored from the config, never read from the state
