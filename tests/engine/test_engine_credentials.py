"""Credentials are never stored: clusters are recorded by name and endpoint, resolved from the config at run time."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from engine_helpers import Project, pipeline_config

SECRET = "pw-Never-In-State-42"
AUTH = "{type: basic, username: admin, password: '{{ var.pw }}'}"
VARS = "  pw: {type: string, sensitive: true}\n"


def config(targets: int = 1, **kw: Any) -> str:
    return pipeline_config(targets=targets, variables=VARS, target_auth=AUTH, **kw)


def files_text(project: Project) -> str:
    return "\n".join(p.read_text(errors="replace") for p in project.root.joinpath(".mactl").rglob("*") if p.is_file())


def test_a_removed_stage_rolls_back_with_the_password_the_config_gives_now(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACTL_VAR_pw", SECRET)
    project.write(config(indices=2))
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.err
    assert SECRET not in files_text(project) and "admin" not in json.dumps(project.state())

    # the password is rotated and migration i1 leaves the config: its rollback gets the new one
    monkeypatch.setenv("MACTL_VAR_pw", SECRET + "-rotated")
    project.write(config(indices=1))
    project.reset_calls()
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.out + r.err
    rollbacks = project.calls("rollback")
    assert sorted(c["address"] for c in rollbacks) == ["backfill.src.snap1.t1.i1.b0", "metadata.src.snap1.t1.i1"]
    rotated = hashlib.sha256((SECRET + "-rotated").encode()).hexdigest()
    assert {c["password_sha256"] for c in rollbacks} == {rotated}
    assert SECRET not in files_text(project)


def test_rolling_back_on_a_cluster_gone_from_the_config_fails_at_plan_naming_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACTL_VAR_pw", SECRET)
    project.write(config(targets=2))
    assert project.run("apply", "-auto-approve").code == 0
    project.write(config(targets=1))
    project.reset_calls()
    r = project.run("plan")
    assert r.code == 1
    assert "metadata.src.snap1.t2.i0 must be rolled back on target 't2', which is no longer in the config" in r.err
    assert "put target 't2' back in the config" in r.err
    assert "Traceback" not in r.err
    r = project.run("apply", "-auto-approve")
    assert r.code == 1 and project.calls("rollback") == []  # refused before anything ran

    # the Terraform way: roll its stages back while it is still configured, then drop it
    project.write(config(targets=2))
    r = project.run("destroy", "-auto-approve", "-target", "*.t2*")
    assert r.code == 0, r.out + r.err
    project.write(config(targets=1))
    r = project.run("plan", "-detailed-exitcode")
    assert r.code == 0, r.out + r.err


def test_a_cluster_without_credentials_rolls_back_from_its_recorded_endpoint(project: Project) -> None:
    project.write(pipeline_config(targets=2))
    assert project.run("apply", "-auto-approve").code == 0
    project.write(pipeline_config(targets=1))
    project.reset_calls()
    r = project.run("apply", "-auto-approve")
    assert r.code == 0, r.out + r.err
    assert "metadata.src.snap1.t2.i0" in {c["address"] for c in project.calls("rollback")}


def test_a_state_with_masked_credentials_loads_plans_nothing_and_drops_them_on_its_next_write(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACTL_VAR_pw", SECRET)
    project.write(config(indices=1))
    assert project.run("apply", "-auto-approve").code == 0
    # what an older mactl recorded: the auth block with its username and a masked password
    path = project.root / ".mactl" / "state.json"
    doc = json.loads(path.read_text())
    for record in doc["stages"].values():
        for key in ("source", "target"):
            if key in record["inputs"] and record["inputs"][key]["auth"]["type"] == "basic":
                record["inputs"][key]["auth"] = {"type": "basic", "username": "admin", "password": "(sensitive)"}
    path.write_text(json.dumps(doc))
    assert "(sensitive)" in path.read_text()

    r = project.run("plan", "-detailed-exitcode")
    assert r.code == 0 and "No changes." in r.out, r.out + r.err
    r = project.run("state", "show", "metadata.src.snap1.t1.i0")
    assert r.code == 0 and "admin" not in r.out and "(sensitive)" not in r.out, r.out
    project.write(config(indices=2))
    assert project.run("apply", "-auto-approve").code == 0
    assert "(sensitive)" not in path.read_text() and "admin" not in path.read_text()
