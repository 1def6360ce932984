"""Leases on the real OpenSearch 2.x target: racing claims, expiry and takeover."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from bf_fixtures import name
from opensearchpy import OpenSearch

from mactl.backfill.leases import Counters, LeaseLost, LeaseStore
from mactl.backfill.units import WorkUnit

pytestmark = pytest.mark.cluster


def _store(url: str, index: str, gen: str, lease_s: float = 30.0) -> LeaseStore:
    return LeaseStore(OpenSearch(url, timeout=30), index, gen, lease_seconds=lease_s)


def test_racing_workers_claim_each_unit_exactly_once(os2: Any, target: OpenSearch) -> None:
    index, gen = name(f"leases-{uuid.uuid4().hex[:4]}"), "g1"
    units = [WorkUnit(f"i{i % 3}", i, 10) for i in range(12)]
    first = _store(os2.url, index, gen)
    first.ensure_index()
    first.register(units, {"note": "test"})
    claimed: dict[str, list[str]] = {}
    lock = threading.Lock()

    def work(name: str) -> None:
        store = _store(os2.url, index, gen)
        while (lease := store.claim(name)) is not None:
            with lock:
                claimed.setdefault(lease.unit.key, []).append(name)
            lease.complete({"pos": 10}, Counters(read=10, written=10, written_by_index={lease.unit.index: 10}))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(u.key for u in units)
    assert all(len(holders) == 1 for holders in claimed.values()), claimed
    records = first.units()
    assert first.all_done() and all(len(r.body["claims"]) == 1 for r in records)
    assert {r.body["claims"][0]["holder"] for r in records} == {h[0] for h in claimed.values()}


def test_expired_lease_is_taken_over_from_its_checkpoint_and_the_old_holder_is_fenced(
    os2: Any, target: OpenSearch
) -> None:
    index, gen = name(f"leases-{uuid.uuid4().hex[:4]}"), "g1"
    a, b = _store(os2.url, index, gen, lease_s=0.5), _store(os2.url, index, gen, lease_s=0.5)
    a.ensure_index()
    a.register([WorkUnit("idx", 0, 100)], {})
    lease_a = a.claim("A")
    assert lease_a is not None
    lease_a.checkpoint({"pos": 42}, Counters(read=42, written=40, skipped=2, written_by_index={"idx": 40}))
    assert b.claim("B") is None  # still held
    time.sleep(0.7)
    lease_b = b.claim("B")
    assert lease_b is not None
    assert lease_b.record.cursor == {"pos": 42} and lease_b.record.counters.read == 42
    with pytest.raises(LeaseLost):
        lease_a.checkpoint({"pos": 50}, Counters(read=50))
    claims = lease_b.record.body["claims"]
    assert [c["holder"] for c in claims] == ["A", "B"] and claims[1]["took_over"] == "A" and claims[1]["from_cursor"]


def test_more_units_than_one_page_are_all_read_without_id_fielddata(os2: Any, target: OpenSearch) -> None:
    """2,500 units (1,000 indices of a few shards each is ordinary) come back complete from a
    scroll, and reading them does not sort on `_id`, which OpenSearch 2 warns about."""
    import warnings

    from opensearchpy.exceptions import OpenSearchWarning

    index = name(f"leases-{uuid.uuid4().hex[:4]}")
    store = _store(os2.url, index, "g1")
    store.ensure_index()
    units = [WorkUnit(f"idx-{i // 5:04d}", i % 5, 1) for i in range(2500)]
    store.register(units, {"note": "many"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", OpenSearchWarning)
        read = store.units()
    assert sorted(r.unit.key for r in read) == sorted(u.key for u in units)
    following = _store(os2.url, index, "g2")  # a new generation drops every document of the old one
    following.register([WorkUnit("x", 0, 1)], {"note": "next"})
    assert following.drop_other_generations() == 2500 + 1  # the units and the meta document
    assert store.units() == [] and [r.unit.key for r in following.units()] == [WorkUnit("x", 0, 1).key]
    target.indices.delete(index=index, ignore=[404])
