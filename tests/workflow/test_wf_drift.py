"""Drift on the real clusters, on the quickstart (capture → snapshot → metadata → backfill →
replay (follow) → validate): a clean apply plans no changes; a template changed by hand
is named and put back; an index deleted by hand is named, redone with what filled it
(its documents come back, byte for byte the source's) and validated again; a stopped
capture proxy is named and restarted. After each repair the plan is empty again.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest
from wf_data import docs_of, request  # type: ignore[import-not-found]
from wf_helpers import Quickstart, Run, mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _plan(qs: Quickstart) -> tuple[Run, dict[str, Any]]:
    """`plan -detailed-exitcode` (its text) and the plan document (the changes by address)."""
    text = qs.run("plan", "-detailed-exitcode")
    saved = qs.run("plan", "-out", str(qs.folder / "drift.plan"))
    assert saved.code == 0, saved.err
    doc = mactl(qs.folder, "show", "-json", str(qs.folder / "drift.plan"), env=qs.env)
    assert doc.code == 0, doc.err
    changes = {c["address"]: c for c in json.loads(doc.out)["resource_changes"]}
    return text, changes


def _action(change: dict[str, Any]) -> str:
    return "/".join(change["change"]["actions"])


def _apply(qs: Quickstart) -> None:
    r = qs.run("apply", "-auto-approve")
    assert r.code == 0, r.out[-3000:] + r.err[-3000:]


def _no_changes(qs: Quickstart) -> None:
    r = qs.run("plan", "-detailed-exitcode")
    assert r.code == 0, r.out[-3000:] + r.err[-3000:]
    assert "No changes" in r.out


def test_drift_is_named_repaired_in_depth_and_status_is_never_drift(
    quickstart: Quickstart, es710: Any, os2: Any
) -> None:
    qs = quickstart
    src = qs.source_name
    products, logs, template = f"{qs.prefix}-products", f"{qs.prefix}-logs-2024.01", f"{qs.prefix}-tmpl"
    metadata, backfill = f"metadata.{src}.snap.os2.m0", f"backfill.{src}.snap.os2.m0.b0"
    replay, validate, capture = f"replay.{src}.os2", f"validate.{src}.os2", f"capture.{src}"
    tmpl_body = {"index_patterns": [f"{qs.prefix}-unused-*"], "order": 3, "settings": {"number_of_shards": 2}}
    request(es710.url, "PUT", f"/_template/{template}", tmpl_body)
    try:
        _apply(qs)
        # (d) a clean apply, then plan: capture's health, replay's status and timestamps are not drift
        _no_changes(qs)

        # (b) a migrated template changed by hand: named, repaired in place, nothing else redone
        request(os2.url, "PUT", f"/_template/{template}", {**tmpl_body, "settings": {"number_of_shards": 5}})
        text, changes = _plan(qs)
        assert text.code == 2, text.out + text.err
        assert f"legacy_template {template} changed on the target" in text.out
        assert _action(changes[metadata]) == "update"
        assert all(_action(changes[a]) == "no-op" for a in (backfill, replay, validate, capture))
        _apply(qs)
        restored = request(os2.url, "GET", f"/_template/{template}")[template]
        assert restored["settings"]["index"]["number_of_shards"] == "2" and restored["order"] == 3
        _no_changes(qs)

        # (a) a migrated index deleted by hand: the metadata stage and what depends on it are redone
        want = {i: docs_of(es710.url, i) for i in (products, logs)}
        assert len(want[products]) == 400 and len(want[logs]) == 400
        request(os2.url, "DELETE", f"/{products}")
        text, changes = _plan(qs)
        assert text.code == 2, text.out + text.err
        assert f"index {products} missing on the target" in text.out
        assert f"created.{products}" not in text.out and "created.1.name" not in text.out  # by name, no rename
        assert _action(changes[metadata]) == "delete/create"
        assert f"index {products} missing on the target" in changes[metadata]["action_reason"]
        for address in (backfill, replay, validate):
            assert _action(changes[address]) == "delete/create", address
            assert changes[address]["action_reason"].startswith("upstream "), address
        assert _action(changes[capture]) == "no-op"
        _apply(qs)
        for index in (products, logs):
            assert docs_of(os2.url, index) == want[index], index  # every document, byte for byte `_source`
        audit = qs.run("audit", "--json")
        assert audit.code == 0, audit.err
        (report,) = json.loads(audit.out)["reports"]
        assert report["passed"]
        rows = {r["index"]: r["checks"] for r in report["indices"]}
        assert rows[products]["count"]["target"] == 400
        _no_changes(qs)

        # (e) the snapshot deleted by hand: it is taken again, and everything built on it is
        # redone from the new one (documents included)
        pull = qs.run("state", "pull")
        assert pull.code == 0, pull.err
        snapshot_address = next(a for a in json.loads(pull.out)["stages"] if a.startswith("snapshot."))
        snap_out = json.loads(pull.out)["stages"][snapshot_address]["outputs"]
        request(es710.url, "DELETE", f"/_snapshot/{snap_out['repository']['name']}/{snap_out['name']}")
        text, changes = _plan(qs)
        assert text.code == 2, text.out + text.err
        assert _action(changes[snapshot_address]) == "create"
        assert changes[snapshot_address]["action_reason"] == "changed outside mactl: it no longer exists"
        for address in (metadata, backfill, validate):
            assert _action(changes[address]) == "delete/create", address
        assert (
            changes[metadata]["action_reason"] == f"upstream {snapshot_address} no longer exists and is created again"
        )
        _apply(qs)
        for index in (products, logs):
            assert docs_of(os2.url, index) == want[index], index
        _no_changes(qs)

        # (c) the capture proxy stopped: named, and applying again restarts it
        pull = qs.run("state", "pull")
        assert pull.code == 0, pull.err
        (proxy,) = json.loads(pull.out)["stages"][capture]["outputs"]["proxies"]
        os.kill(int(proxy["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(int(proxy["pid"]), 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        text, changes = _plan(qs)
        assert text.code == 2, text.out + text.err
        assert f"proxy {proxy['id']} not answering" in text.out
        assert _action(changes[capture]) == "update"
        assert all(_action(changes[a]) == "no-op" for a in (metadata, backfill, replay, validate))
        _apply(qs)
        _no_changes(qs)
    finally:
        request(es710.url, "DELETE", f"/_template/{template}")
        request(os2.url, "DELETE", f"/_template/{template}")
