"""Progress of a stage, computed from the lease documents: per index and shard, docs/s, ETA.

Every worker writes its counters into its lease at each checkpoint, so anyone who can
read the working-state index (the apply process, `mactl worker`, an operator) sees the
same numbers. Rates come from the change of the done count between two looks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table

from mactl.backfill.leases import UnitRecord


@dataclass
class IndexProgress:
    index: str
    shards: int = 0
    shards_done: int = 0
    total: int = 0
    read: int = 0
    written: int = 0
    failed: int = 0
    skipped: int = 0
    dropped: int = 0
    unmigratable: int = 0
    failed_reasons: dict[str, int] = field(default_factory=dict)
    failed_examples: dict[str, str] = field(default_factory=dict)


@dataclass
class Snapshot:
    """One look at the leases."""

    at: float
    done_docs: int
    total_docs: int
    units_done: int
    units_total: int
    indices: dict[str, IndexProgress] = field(default_factory=dict)
    units: list[UnitRecord] = field(default_factory=list)


def summarise(units: Sequence[UnitRecord], at: float | None = None) -> Snapshot:
    indices: dict[str, IndexProgress] = {}
    for u in units:
        p = indices.setdefault(u.body["index"], IndexProgress(u.body["index"]))
        c = u.counters
        p.shards += 1
        p.shards_done += u.status == "done"
        p.total += int(u.body.get("total", 0))
        p.read += c.read
        p.written += c.written
        p.failed += c.failed
        p.skipped += c.skipped
        p.dropped += c.dropped
        p.unmigratable += c.unmigratable
        for kind, n in c.failed_reasons.items():
            p.failed_reasons[kind] = p.failed_reasons.get(kind, 0) + n
        for kind, text in c.failed_examples.items():
            p.failed_examples.setdefault(kind, text)
    return Snapshot(
        at=time.monotonic() if at is None else at,
        done_docs=sum(p.read for p in indices.values()),
        total_docs=sum(p.total for p in indices.values()),
        units_done=sum(p.shards_done for p in indices.values()),
        units_total=len(units),
        indices=dict(sorted(indices.items())),
        units=sorted(units, key=lambda u: (u.body["index"], int(u.body["shard"]))),
    )


class RateTracker:
    """docs/s over a sliding window of looks, and the ETA it implies."""

    def __init__(self, window_s: float = 20.0) -> None:
        self._window = window_s
        self._looks: list[tuple[float, int]] = []

    def add(self, snap: Snapshot) -> None:
        self._looks.append((snap.at, snap.done_docs))
        while len(self._looks) > 2 and snap.at - self._looks[0][0] > self._window:
            self._looks.pop(0)

    def rate(self) -> float:
        if len(self._looks) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self._looks[0], self._looks[-1]
        return max(0.0, (d1 - d0) / (t1 - t0)) if t1 > t0 else 0.0

    def eta_s(self, snap: Snapshot) -> float | None:
        rate = self.rate()
        return None if rate <= 0 else max(0.0, (snap.total_docs - snap.done_docs) / rate)


def fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def one_line(snap: Snapshot, rates: RateTracker) -> str:
    if snap.units_total and snap.units_done == snap.units_total:
        return f"{snap.units_done}/{snap.units_total} shards, {snap.done_docs:,}/{snap.total_docs:,} docs, done"
    return (
        f"{snap.units_done}/{snap.units_total} shards, {snap.done_docs:,}/{snap.total_docs:,} docs, "
        f"{rates.rate():,.0f} docs/s, ETA {fmt_eta(rates.eta_s(snap))}"
    )


def table(snap: Snapshot, rates: RateTracker, *, shards: bool = True) -> Table:
    """A rich table: one row per index (and per shard, indented), with docs/s and ETA in the title."""
    t = Table(title=f"backfill: {one_line(snap, rates)}", expand=False)
    for col in ("index / shard", "status", "read", "total", "written", "failed", "skipped", "dropped"):
        t.add_column(col, justify="left" if col in ("index / shard", "status") else "right")
    for name, p in snap.indices.items():
        t.add_row(
            f"[bold]{name}",
            f"{p.shards_done}/{p.shards} done",
            f"{p.read:,}",
            f"{p.total:,}",
            f"{p.written:,}",
            f"{p.failed:,}",
            f"{p.skipped:,}",
            f"{p.dropped:,}",
        )
        if shards:
            for u in snap.units:
                if u.body["index"] != name:
                    continue
                c = u.counters
                status = u.status if u.status != "leased" else f"leased by {u.body.get('holder')}"
                t.add_row(
                    f"  shard {u.body['shard']}",
                    status,
                    f"{c.read:,}",
                    f"{int(u.body.get('total', 0)):,}",
                    f"{c.written:,}",
                    f"{c.failed:,}",
                    f"{c.skipped:,}",
                    f"{c.dropped:,}",
                )
    return t
