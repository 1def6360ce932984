"""`resend-failed`: send dead-lettered documents again, optionally through a new transform.

This is the seed's "automatically use a newly modified transform to resend failed
documents". With a transform, it runs on each entry's `original` (the snapshot document
before the stage's transforms), so a fixed version of the stage's transform can simply
be passed in; without one, the source that was sent is sent again as-is (for when the
fix was on the target, e.g. a mapping). What still fails is written to a new
dead-letter file before the old files are removed, so nothing is lost if this crashes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from opensearchpy import OpenSearch

from mactl.backfill import deadletter
from mactl.backfill.bulk import Batch, BulkSender, Item, action_line
from mactl.backfill.doc_transforms import DocumentTransformer
from mactl.state.document import ERRORS_OUTPUT_KEY


@dataclass
class ResendResult:
    entries: int = 0  # distinct documents found in the dead-letter queue
    written: int = 0
    failed: int = 0
    dropped: int = 0
    files_removed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # Per source index (the snapshot's, as in the stage's `indices` outputs): written now,
    # still failing (what the dead-letter queue holds afterwards), dropped by the transform.
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    # Per target index: documents written there now.
    written_by_target: dict[str, int] = field(default_factory=dict)

    def count(self, source_index: str, column: str, n: int = 1) -> None:
        row = self.by_source.setdefault(source_index, {"written": 0, "failed": 0, "dropped": 0})
        row[column] += n

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def book_resend(outputs: Mapping[str, Any], result: ResendResult, target_counts: Mapping[str, int]) -> dict[str, Any]:
    """A backfill stage's outputs with a resend entered in its books.

    Per source index, the documents written now move from `failed` to `written` (or to
    `dropped` when the resend's transform dropped them), and `failed` becomes what is
    still in the dead-letter queue; the dead-letter total follows. Each target index
    written to gets its expected count raised and its actual count as counted on the
    target now (`target_counts`). The one place a resend changes the books: a per-index
    ledger in the outputs is updated here too.
    """
    out = dict(outputs)
    indices = {name: dict(row) for name, row in (outputs.get("indices") or {}).items()}
    for name, moved in result.by_source.items():
        row = indices.setdefault(name, {"written": 0, "failed": 0, "dropped": 0})
        row["written"] = int(row.get("written", 0)) + moved["written"]
        row["dropped"] = int(row.get("dropped", 0)) + moved["dropped"]
    for name, row in indices.items():
        row["failed"] = result.by_source.get(name, {}).get("failed", 0)
    out["indices"] = indices
    target = {name: dict(row) for name, row in (outputs.get("targetIndices") or {}).items()}
    for name, n in result.written_by_target.items():
        row = target.setdefault(name, {"expected": 0, "actual": 0})
        row["expected"] = int(row.get("expected", 0)) + n
    for name, n in target_counts.items():
        target.setdefault(name, {"expected": 0, "actual": 0})["actual"] = n
    out["targetIndices"] = target
    out["differences"] = [
        f"{name}: target holds {row['actual']} documents, expected {row['expected']}"
        for name, row in sorted(target.items())
        if row["actual"] != row["expected"]
    ]
    out["deadLetter"] = {**(outputs.get("deadLetter") or {}), "documents": result.failed}
    out["resends"] = [
        *(outputs.get("resends") or []),
        {"documents": result.entries, "written": result.written, "failed": result.failed, "dropped": result.dropped},
    ]
    if isinstance(outputs.get("ledger"), Mapping):
        out["ledger"] = _ledger_after_resend(outputs["ledger"], result)
    if result.failed == 0:
        out.pop(ERRORS_OUTPUT_KEY, None)  # nothing left dead-lettered: no longer "complete with errors"
    return out


def _ledger_after_resend(ledger: Mapping[str, Any], result: ResendResult) -> dict[str, Any]:
    """The per-index ledger with the resent documents moved out of the dead-letter column.

    A document resent and written moves to `written`, one the resend's transform dropped
    to `droppedByTransform`; `deadLettered` becomes what is still in the queue. `live` and
    `unaccounted` do not change: a resend moves documents between columns, it never finds
    or loses one.
    """
    out: dict[str, Any] = {}
    for name, row in ledger.items():
        new_row = dict(row)
        moved = result.by_source.get(name)
        if moved is not None:
            new_row["written"] = int(row.get("written", 0)) + moved["written"]
            new_row["droppedByTransform"] = int(row.get("droppedByTransform", 0)) + moved["dropped"]
            new_row["deadLettered"] = moved["failed"]
        if not new_row.get("deadLettered"):
            new_row.pop("deadLetterReasons", None)
            new_row.pop("deadLetterExamples", None)
        out[name] = new_row
    return out


def _reason_type(reason: Any) -> str:
    if isinstance(reason, dict):
        return str(reason.get("type") or "error")
    return str(reason)[:60]


def _source_index(item: Item) -> str:
    return str((item.original or {}).get("_index") or item.index)


def resend(
    client: OpenSearch,
    location: deadletter.Location,
    *,
    transformer: DocumentTransformer | None = None,
    batch_docs: int = 500,
    retry_deadline_s: float = 600.0,
) -> ResendResult:
    files = deadletter.list_files(location)
    latest: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for e in deadletter.read_entries(location, files):
        original = e.get("original") or {
            "_index": e["index"],
            "_id": e["id"],
            "_routing": e.get("routing"),
            "_source": e["source"],
        }
        latest[(original["_index"], original["_id"], original.get("_routing"))] = e
    result = ResendResult(entries=len(latest))
    if not latest:
        return result
    sender = BulkSender(client, retry_deadline_s=retry_deadline_s)
    still_failing: list[bytes] = []
    batch = Batch()
    entries = list(latest.values())
    touched: set[str] = set()

    def flush() -> None:
        nonlocal batch
        if not batch.items:
            return
        outcome = sender.send(batch)
        result.written += outcome.written
        touched.update(outcome.written_by_index)
        for index, n in outcome.written_by_index.items():
            result.written_by_target[index] = result.written_by_target.get(index, 0) + n
        rejected = {(rej.item.index, rej.item.id, rej.item.routing) for rej in outcome.rejected}
        for item in batch.items:
            failed = (item.index, item.id, item.routing) in rejected
            result.count(_source_index(item), "failed" if failed else "written")
        for rej in outcome.rejected:
            result.failed += 1
            kind = _reason_type(rej.reason)
            result.reasons[kind] = result.reasons.get(kind, 0) + 1
            still_failing.append(
                deadletter.entry(
                    stage=location.stage,
                    unit="resend",
                    index=rej.item.index,
                    doc_id=rej.item.id,
                    routing=rej.item.routing,
                    source_line=rej.item.line.split(b"\n", 1)[1],
                    original=rej.item.original,
                    status=rej.status,
                    reason=rej.reason,
                )
            )
        batch = Batch()

    for e in entries:
        original = e.get("original") or {
            "_index": e["index"],
            "_id": e["id"],
            "_routing": e.get("routing"),
            "_source": e["source"],
        }
        if transformer is not None and not transformer.is_identity:
            out = transformer.apply(
                original["_index"], original["_id"], original.get("_routing"), dict(original["_source"])
            )
            if out is None:
                result.dropped += 1
                result.count(original["_index"], "dropped")
                continue
            index, doc_id, routing, source = out.index, out.id, out.routing, out.source
        else:
            index, doc_id, routing, source = e["index"], e["id"], e.get("routing"), e["source"]
        line = action_line(index, doc_id, routing) + orjson.dumps(source) + b"\n"
        batch.add(Item(line, index, doc_id, routing, original))
        if len(batch.items) >= batch_docs:
            flush()
    flush()
    if still_failing:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        deadletter.write_file(location, f"resend-{stamp}.ndjson", still_failing)
    deadletter.remove_files(location, files)
    result.files_removed = len(files)
    for index in sorted(touched):
        client.indices.refresh(index=index, ignore=[404])
    return result
