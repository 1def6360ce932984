"""The exit check: does the target hold what the leases say was written?

Expected count per target index = documents written there (the snapshot's live
documents less those skipped by sampling, dropped by transforms and dead-lettered).
The check refreshes the target indices and counts; any difference is reported per index.
It also checks that every shard yielded exactly its live document count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError

from mactl.backfill.progress import Snapshot
from mactl.backfill.retry import with_retry


@dataclass
class CountCheck:
    target: dict[str, dict[str, int]] = field(default_factory=dict)  # index -> {expected, actual}
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def expected_by_target_index(snap: Snapshot) -> dict[str, int]:
    out: dict[str, int] = {}
    for u in snap.units:
        for index, n in u.counters.written_by_index.items():
            out[index] = out.get(index, 0) + n
    return out


def check_counts(client: OpenSearch, snap: Snapshot, *, deadline_s: float = 600.0) -> CountCheck:
    check = CountCheck()
    for u in snap.units:
        c = u.counters
        total = int(u.body.get("total", 0))
        if c.read != total:
            check.differences.append(
                f"{u.body['index']} shard {u.body['shard']}: read {c.read} documents, the snapshot says {total} are live"
            )
    for index, expected in sorted(expected_by_target_index(snap).items()):

        def count(index: str = index) -> int:
            try:
                client.indices.refresh(index=index)
                return int(client.count(index=index)["count"])
            except NotFoundError:
                return 0

        actual = with_retry(count, deadline_s=deadline_s, what=f"count {index}")
        check.target[index] = {"expected": expected, "actual": actual}
        if actual != expected:
            check.differences.append(f"{index}: target holds {actual} documents, expected {expected}")
    return check


def per_index_outputs(snap: Snapshot) -> dict[str, Any]:
    return {
        name: {
            "shards": p.shards,
            "live": p.total,
            "read": p.read,
            "written": p.written,
            "failed": p.failed,
            "skippedBySampling": p.skipped,
            "dropped": p.dropped,
        }
        for name, p in snap.indices.items()
    }
