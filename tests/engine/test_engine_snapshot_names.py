"""A state that took its snapshot under the untagged name keeps it: the tag never plans a replacement."""

from __future__ import annotations

import json

import pytest
from engine_helpers import Project, pipeline_config

import mactl.graph.expand as expand_module

CONFIG = "state: {backend: local, path: .mactl-prod}\n" + pipeline_config(indices=1)
SNAPSHOT = "snapshot.src.snap1"


def _names(project: Project) -> set[str]:
    doc = json.loads(project.plan_document("-refresh=false").out)
    return {
        c["change"]["after"]["snapshotName"]
        for c in doc["resource_changes"]
        if c["change"]["after"] and "snapshotName" in c["change"]["after"]
    }


def _state(project: Project) -> dict:
    return json.loads((project.root / ".mactl-prod" / "state.json").read_text())


def test_a_new_state_takes_a_tagged_name_and_an_old_state_keeps_its_own(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write(CONFIG)
    (tagged,) = _names(project)
    assert tagged.startswith("mactl-src-snap1-") and len(tagged) == len("mactl-src-snap1-") + 8

    # what a state applied before snapshot names had a tag recorded
    with monkeypatch.context() as old:
        old.setattr(expand_module, "state_tag", lambda config, workspace: "")
        assert project.run("apply", "-auto-approve", "-refresh=false").code == 0
    assert _state(project)["stages"][SNAPSHOT]["inputs"]["snapshotName"] == "mactl-src-snap1"

    r = project.run("plan", "-refresh=false", "-detailed-exitcode")
    assert r.code == 0, r.out  # no changes: nothing replaced because of the new name
    assert _names(project) == {"mactl-src-snap1"}  # and every stage still reads that snapshot
    project.reset_calls()
    project.write(CONFIG.replace("{indices: {names: idx0}}", "{indices: {names: idx0}, onExisting: skip}"))
    r = project.run("apply", "-auto-approve", "-refresh=false")
    assert r.code == 0, r.err
    assert _state(project)["stages"]["metadata.src.snap1.t1.i0"]["inputs"]["snapshotName"] == "mactl-src-snap1"
    assert SNAPSHOT not in {c["address"] for c in project.calls("apply")}
