"""The drift rule (`mactl.plan.drift`): only declared facts compare, named items by name.

The providers' `facts` are pure functions of outputs, so they are checked here on the
outputs their `read` produces; the real-cluster drift tests are in
tests/workflow/test_wf_drift.py.
"""

from __future__ import annotations

from typing import Any

from mactl.providers.base import BaseProvider, Fact
from mactl.providers.capture import CaptureProvider
from mactl.providers.metadata import MetadataProvider
from mactl.providers.replay import ReplayProvider

from mactl.plan.drift import compare, keyed


def test_named_lists_compare_by_name_so_a_missing_item_is_not_a_rename() -> None:
    before = {"created": Fact([{"name": "chaos-a"}, {"name": "chaos-b"}, {"name": "chaos-c"}])}
    after = {"created": Fact([{"name": "chaos-a"}, {"name": "chaos-c"}])}
    (finding,) = compare(before, after)
    assert finding.change.path == "created.chaos-b"
    assert finding.change.after == "absent" and finding.reason == "created.chaos-b gone"
    assert keyed([{"id": "x", "v": 1}, {"id": "y"}]) == {"x": {"id": "x", "v": 1}, "y": {"id": "y"}}
    assert keyed([{"name": "same"}, {"name": "same"}]) == [
        {"name": "same"},
        {"name": "same"},
    ]  # not unique: by position


def test_redo_comes_from_the_fact_and_equal_facts_never_drift() -> None:
    recorded = {"index a": Fact("present", redo=True), "index_template t": Fact("as created")}
    assert compare(recorded, dict(recorded)) == []
    observed = {"index a": Fact("missing on the target", redo=True), "index_template t": Fact("changed on the target")}
    found = {f.change.path: f for f in compare(recorded, observed)}
    assert found["index a"].redo and found["index a"].reason == "index a missing on the target"
    assert not found["index_template t"].redo


def test_volatile_status_is_never_a_fact() -> None:
    # capture: the outputs as applied vs as read (health and capture flags added) are the same facts
    applied = {"proxies": [{"id": "es-0", "url": "http://127.0.0.1:1", "pid": 7}], "capturingSince": 1.0}
    read = {"proxies": [{**applied["proxies"][0], "healthy": True, "capturing": True}], "capturingSince": 2.0}
    capture = CaptureProvider()
    assert compare(capture.facts(applied), capture.facts(read)) == []
    stopped = {"proxies": [{**applied["proxies"][0], "healthy": False, "capturing": False}]}
    (finding,) = compare(capture.facts(applied), capture.facts(stopped))
    assert finding.reason == "proxy es-0 not answering" and not finding.redo

    # replay: status, running flag and timestamps are status only
    replay = ReplayProvider()
    assert replay.facts({"status": {"updatedAt": 1}, "follow": True}) == {}

    # metadata: what read observed on the target, per created item
    metadata = MetadataProvider()
    created = {"created": [{"kind": "index", "name": "a"}, {"kind": "index_template", "name": "t"}], "report": {}}
    seen = {**created, "onTarget": {"index a": "present", "index_template t": "as created"}, "report": {"x": 1}}
    assert compare(metadata.facts(created), metadata.facts(seen)) == []
    gone = {**created, "onTarget": {"index a": "missing on the target", "index_template t": "as created"}}
    (finding,) = compare(metadata.facts(created), metadata.facts(gone))
    assert finding.redo and finding.reason == "index a missing on the target"


def test_a_provider_that_declares_nothing_compares_its_whole_outputs() -> None:
    base = BaseProvider[Any]()
    assert base.facts({"a": 1}) == {"a": Fact(1)}
