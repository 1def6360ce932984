"""The coordinator's look loop (`LeaseWatch.looks`), shared by local workers and a Job's pods:
what it reports, what it skips, and how a cancel ends it. The lease store is a stand-in that
hands out prepared lease documents (the loop's logic, not OpenSearch, is under test here;
tests/backfill/test_backfill_stage.py and tests/kube run it against real clusters)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mactl.backfill.coordinator import Cancelled, LeaseWatch
from mactl.backfill.leases import LeaseStore, UnitRecord
from mactl.backfill.progress import RateTracker, Snapshot
from mactl.backfill.spec import JobSpec
from mactl.errors import ProviderError


def _unit(status: str, written: int) -> UnitRecord:
    body = {"index": "i", "shard": 0, "total": 1, "status": status, "counters": {"read": written, "written": written}}
    return UnitRecord("i/0", body, 0, 1)


class _Store:
    """Each `units()` is the next prepared answer; an exception in the list is raised."""

    def __init__(self, answers: list[list[UnitRecord] | Exception]) -> None:
        self._answers: Iterator[list[UnitRecord] | Exception] = iter(answers)

    def units(self) -> list[UnitRecord]:
        answer = next(self._answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _watch(answers: list[list[UnitRecord] | Exception], logged: list[str]) -> LeaseWatch:
    spec = cast(JobSpec, SimpleNamespace(address="backfill.a", state_index="mactl-backfill-a", retry_deadline_s=60.0))
    return LeaseWatch(cast(LeaseStore, _Store(answers)), spec, logged.append)


def test_each_look_is_counted_and_reported_and_a_failed_look_is_skipped_with_a_word() -> None:
    logged: list[str] = []
    reported: list[Snapshot] = []
    rates = RateTracker()
    watch = _watch([[_unit("leased", 10)], ConnectionError("index restarting"), [_unit("done", 25)]], logged)
    seen: list[Snapshot] = []
    for snap in watch.looks(threading.Event(), rates, lambda s, _r: reported.append(s), "cancelled", every_s=0.0):
        seen.append(snap)
        if snap.units_done == snap.units_total:
            break
    assert [s.units_done for s in seen] == [0, 1] and reported == seen
    assert [s.done_docs for s in seen] == [10, 25]
    assert len(logged) == 1 and "could not read the leases" in logged[0] and "index restarting" in logged[0]


def test_a_cancel_ends_the_looks_with_its_message() -> None:
    cancelled = threading.Event()
    watch = _watch([[_unit("leased", 1)]] * 3, [])
    looks = watch.looks(cancelled, RateTracker(), lambda _s, _r: None, "backfill.a: cancelled; a rerun resumes", 0.0)
    assert next(looks).units_done == 0
    cancelled.set()
    with pytest.raises(Cancelled, match="backfill.a: cancelled; a rerun resumes"):
        next(looks)


def test_looks_failing_past_the_retry_deadline_name_the_index() -> None:
    watch = _watch([ConnectionError("gone")] * 3, [])
    cast(Any, watch)._spec.retry_deadline_s = 0.0  # any failure lasts longer than that
    with pytest.raises(ProviderError, match="cannot read the working state mactl-backfill-a: gone"):
        next(watch.looks(threading.Event(), RateTracker(), lambda _s, _r: None, "cancelled", 0.01))
