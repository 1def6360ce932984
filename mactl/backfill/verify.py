"""The exit check: the document ledger, reconciled with the snapshot, and the target's counts.

For every index the stage selected, the snapshot's live top-level documents (nested
children excluded: the count the units were registered with, read from the snapshot
files when the shards were listed, not from what the workers did) must equal

    written + dead-lettered + skipped by sampling + dropped by a transform + not migratable

Any document in no column is a difference naming the index and the count. The target is
then counted per index (after a refresh) and must hold what the ledger says was written
there. Every shard must also have yielded exactly its live top-level count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError

from mactl.backfill.progress import Snapshot
from mactl.backfill.retry import with_retry

TOP_REASONS = 3


@dataclass
class CountCheck:
    target: dict[str, dict[str, int]] = field(default_factory=dict)  # index -> {expected, actual}
    ledger: dict[str, dict[str, Any]] = field(default_factory=dict)  # source index -> columns
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


def build_ledger(snap: Snapshot, unmigratable: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Per source index: the snapshot's live top-level count and where each document went."""
    reasons = dict(unmigratable or {})
    ledger: dict[str, dict[str, Any]] = {}
    for name, p in snap.indices.items():
        accounted = p.written + p.failed + p.skipped + p.dropped + p.unmigratable
        row: dict[str, Any] = {
            "live": p.total,
            "written": p.written,
            "deadLettered": p.failed,
            "skippedBySampling": p.skipped,
            "droppedByTransform": p.dropped,
            "notMigratable": p.unmigratable,
            "unaccounted": p.total - accounted,
            "shardsDone": p.shards_done,
            "shards": p.shards,
        }
        if p.failed_reasons:
            row["deadLetterReasons"] = dict(sorted(p.failed_reasons.items(), key=lambda kv: (-kv[1], kv[0])))
            row["deadLetterExamples"] = {
                k: p.failed_examples[k] for k in row["deadLetterReasons"] if k in p.failed_examples
            }
        if p.unmigratable:
            row["notMigratableReason"] = reasons.get(name, "the snapshot holds no _source for these documents")
        ledger[name] = row
    return ledger


def top_reasons(row: Mapping[str, Any], n: int = TOP_REASONS) -> str:
    """`mapper_parsing_exception 140, version_conflict 5` for a ledger row's dead letters."""
    found = list((row.get("deadLetterReasons") or {}).items())[:n]
    return ", ".join(f"{kind} {count}" for kind, count in found)


def ledger_differences(ledger: Mapping[str, Mapping[str, Any]]) -> list[str]:
    out = []
    for index, row in sorted(ledger.items()):
        missing = int(row.get("unaccounted", 0))
        if missing:
            out.append(
                f"{index}: {missing} of the snapshot's {row['live']} live documents are in no column of the ledger"
                if missing > 0
                else f"{index}: the ledger counts {-missing} documents more than the snapshot's {row['live']} live ones"
            )
    return out


def check_counts(
    client: OpenSearch,
    snap: Snapshot,
    *,
    deadline_s: float = 600.0,
    unmigratable: Mapping[str, str] | None = None,
    same_names: bool = False,
    before: Mapping[str, int] | None = None,
) -> CountCheck:
    """The ledger and the target's counts. `same_names`: no transform can rename an index,
    so every selected index is counted on the target, also one nothing was written to.
    `before`: documents an index held before the stage wrote to it (one that was on the
    target first), expected on top of what the ledger says was written."""
    check = CountCheck()
    for u in snap.units:
        c = u.counters
        total = int(u.body.get("total", 0))
        if c.read != total:
            check.differences.append(
                f"{u.body['index']} shard {u.body['shard']}: read {c.read} documents, the snapshot says {total} are live"
            )
    check.ledger = build_ledger(snap, unmigratable)
    check.differences += ledger_differences(check.ledger)
    expected_by_index = expected_by_target_index(snap)
    if same_names:
        for index in check.ledger:
            expected_by_index.setdefault(index, 0)
    for index, n in (before or {}).items():
        if index in expected_by_index:
            expected_by_index[index] += n
    for index, expected in sorted(expected_by_index.items()):

        def count(index: str = index) -> int | None:
            try:
                client.indices.refresh(index=index)
                return int(client.count(index=index)["count"])
            except NotFoundError:
                return None

        found = with_retry(count, deadline_s=deadline_s, what=f"count {index}")
        if found is None and expected == 0:
            continue  # nothing was to be written there, and nothing is
        actual = found or 0
        check.target[index] = {"expected": expected, "actual": actual}
        if actual != expected:
            had = (before or {}).get(index)
            check.differences.append(
                f"{index}: target holds {actual} documents, the ledger says {expected} were written"
                if not had
                else f"{index}: target holds {actual} documents, expected {expected} "
                f"({had} it held before and {expected - had} the ledger says were written)"
            )
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
            "notMigratable": p.unmigratable,
        }
        for name, p in snap.indices.items()
    }


def errors_summary(ledger: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """What makes a finished stage `complete_with_errors`: dead letters, per index with the
    top reasons. None when nothing was dead-lettered."""
    per_index: dict[str, dict[str, Any]] = {
        index: {"deadLettered": int(row["deadLettered"]), "topReasons": top_reasons(row)}
        for index, row in sorted(ledger.items())
        if int(row.get("deadLettered", 0))
    }
    if not per_index:
        return None
    total = sum(int(v["deadLettered"]) for v in per_index.values())
    return {
        "deadLettered": total,
        "indices": per_index,
        "summary": f"{total} document(s) dead-lettered: "
        + "; ".join(f"{i} {v['deadLettered']} ({v['topReasons']})" for i, v in per_index.items()),
    }
