"""`import` blocks and `mactl import` on the real clusters: adopt a snapshot and target metadata
that match, refuse what differs (saying what), and own what was adopted (destroy deletes it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from wf_data import request  # type: ignore[import-not-found]
from wf_helpers import Quickstart, mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _addresses(qs: Quickstart) -> tuple[str, str]:
    src = qs.source_name
    return f"snapshot.{src}.snap", f"metadata.{src}.snap.os2.m0"


def test_import_adopts_what_matches_refuses_what_differs_and_owns_it(
    quickstart: Quickstart, es710: Any, os2: Any
) -> None:
    qs = quickstart
    snapshot, metadata = _addresses(qs)
    products = f"{qs.prefix}-products"
    r = qs.run("apply", "-auto-approve", "-target", metadata)
    assert r.code == 0, r.out + r.err
    pulled = json.loads(qs.run("state", "pull").out)["stages"]
    snap_out = pulled[snapshot]["outputs"]
    repo, snap_name, snap_uuid = snap_out["repository"]["name"], snap_out["name"], snap_out["uuid"]
    index_uuid = request(os2.url, "GET", f"/{products}/_settings")[products]["settings"]["index"]["uuid"]
    # mactl forgets both stages; the snapshot and the target's index stay where they are
    assert qs.run("state", "rm", snapshot, metadata).code == 0

    text = qs.config.read_text()
    qs.config.write_text(text + f"import:\n  - {{to: {snapshot}}}\n  - {{to: {metadata}}}\n")
    r = qs.run("plan", "-target", metadata)
    assert r.code == 0, r.out + r.err
    assert f"# {snapshot} will be IMPORTED" in r.out and f"# {metadata} will be IMPORTED" in r.out
    assert "rolling it back DELETES it" in r.out
    assert "2 to import." in r.out
    assert qs.run("plan", "-target", metadata, "-out", "import.plan").code == 0
    doc = json.loads(mactl(qs.folder, "show", "-json", "import.plan", env=qs.env).out)
    importing = {c["address"]: c["change"] for c in doc["resource_changes"] if c["change"]["actions"] == ["import"]}
    assert set(importing) == {snapshot, metadata} and importing[snapshot]["importing"] == {"id": None}

    r = qs.run("apply", "-auto-approve", "-target", metadata)
    assert r.code == 0, r.out + r.err
    # adopted, not redone: the same snapshot and the same index
    snaps = request(es710.url, "GET", f"/_snapshot/{repo}/{snap_name}")["snapshots"]
    assert [s["uuid"] for s in snaps] == [snap_uuid]
    assert request(os2.url, "GET", f"/{products}/_settings")[products]["settings"]["index"]["uuid"] == index_uuid
    stages = json.loads(qs.run("state", "pull").out)["stages"]
    assert stages[snapshot]["status"] == "complete" and stages[snapshot]["outputs"]["imported"] is True
    assert {"kind": "index", "name": products} in stages[metadata]["outputs"]["created"]
    r = qs.run("plan", "-target", metadata, "-detailed-exitcode")
    assert r.code == 0 and "No changes." in r.out, r.out + r.err

    # what differs is refused, at plan and by `mactl import`, saying what
    assert qs.run("state", "rm", metadata).code == 0
    request(os2.url, "PUT", f"/{products}/_mapping", {"properties": {"added_by_hand": {"type": "keyword"}}})
    r = qs.run("plan", "-target", metadata)
    assert r.code == 1
    assert "import refused" in r.err and f"index {products}: on the target with another definition" in r.err
    assert "added_by_hand" in r.err and "Traceback" not in r.err
    qs.config.write_text(text)  # no import blocks: the command line alone
    r = qs.run("import", metadata)
    assert r.code == 1 and f"index {products}: on the target with another definition" in r.err, r.out + r.err
    assert metadata not in json.loads(qs.run("state", "pull").out)["stages"]
    r = qs.run("import", snapshot, "another-name")
    assert r.code == 1 and "already has this stage" in r.err

    # imported means owned: destroying the snapshot stage deletes the snapshot
    r = qs.run("destroy", "-auto-approve", "-target", snapshot)
    assert r.code == 0, r.out + r.err
    assert request(es710.url, "GET", f"/_snapshot/{repo}/_all")["snapshots"] == []
