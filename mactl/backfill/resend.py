"""`resend-failed`: send dead-lettered documents again, optionally through a new transform.

This is the seed's "automatically use a newly modified transform to resend failed
documents". With a transform, it runs on each entry's `original` (the snapshot document
before the stage's transforms), so a fixed version of the stage's transform can simply
be passed in; without one, the source that was sent is sent again as-is (for when the
fix was on the target, e.g. a mapping). What still fails is written to a new
dead-letter file before the old files are removed, so nothing is lost if this crashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from opensearchpy import OpenSearch

from mactl.backfill import deadletter
from mactl.backfill.bulk import Batch, BulkSender, Item, action_line
from mactl.backfill.doc_transforms import DocumentTransformer


@dataclass
class ResendResult:
    entries: int = 0  # distinct documents found in the dead-letter queue
    written: int = 0
    failed: int = 0
    dropped: int = 0
    files_removed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _reason_type(reason: Any) -> str:
    if isinstance(reason, dict):
        return str(reason.get("type") or "error")
    return str(reason)[:60]


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
