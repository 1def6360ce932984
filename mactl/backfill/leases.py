"""Who owns which work unit: lease documents in a working-state index on the target.

One document per (generation, index, shard) holds the unit's status, its holder, the
lease expiry and the cursor checkpoint with the counters as of that cursor. Every change
is a conditional write (`if_seq_no`/`if_primary_term`), so two workers can never both own
a unit: the loser of a race gets a 409 and moves on. A lease whose expiry has passed may
be taken over; the new holder resumes from the last checkpoint, which is safe because
writes are idempotent by `_id`. A holder that finds its lease taken (409 on checkpoint)
stops working on the unit.

A generation is a hash of the inputs that decide which documents are written (snapshot,
indices, transforms, sample): growing a sample starts a new generation that redoes every
unit (only adding documents), while a crash-and-rerun keeps the generation and resumes.
This module knows nothing about documents or bulk writes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConflictError, NotFoundError

from mactl.backfill.retry import with_retry
from mactl.backfill.units import WorkUnit

T = TypeVar("T")

STATE_INDEX_SETTINGS: dict[str, Any] = {
    "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1", "hidden": True}},
    "mappings": {
        "dynamic": False,
        "properties": {
            "kind": {"type": "keyword"},
            "gen": {"type": "keyword"},
            "unit": {"type": "keyword"},
            "status": {"type": "keyword"},
            "holder": {"type": "keyword"},
            "expires_at": {"type": "long"},
        },
    },
}


class LeaseLost(Exception):
    """Another worker took this unit over (our lease expired); stop working on it."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Counters:
    """Per-unit document counts, always as of the unit's checkpoint cursor."""

    read: int = 0
    written: int = 0
    failed: int = 0
    skipped: int = 0  # by sampling
    dropped: int = 0  # by a transform
    unmigratable: int = 0  # live in the snapshot, but the reader cannot rebuild them (no `_source`)
    written_by_index: dict[str, int] = field(default_factory=dict)
    failed_reasons: dict[str, int] = field(default_factory=dict)  # dead letters by error type
    failed_examples: dict[str, str] = field(default_factory=dict)  # error type -> one full reason

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "written": self.written,
            "failed": self.failed,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "unmigratable": self.unmigratable,
            "written_by_index": dict(self.written_by_index),
            "failed_reasons": dict(self.failed_reasons),
            "failed_examples": dict(self.failed_examples),
        }

    def add_failure(self, status: int, reason: Any) -> None:
        """Count one dead letter under its error type (keeping the first full reason of each type)."""
        if isinstance(reason, Mapping):
            kind = str(reason.get("type") or f"status {status}")
            text = str(reason.get("reason") or "")
        else:
            kind, text = f"status {status}", str(reason or "")
        self.failed_reasons[kind] = self.failed_reasons.get(kind, 0) + 1
        if kind not in self.failed_examples and len(self.failed_examples) < 20:
            self.failed_examples[kind] = text[:300]

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Counters:
        data = data or {}
        return cls(
            read=int(data.get("read", 0)),
            written=int(data.get("written", 0)),
            failed=int(data.get("failed", 0)),
            skipped=int(data.get("skipped", 0)),
            dropped=int(data.get("dropped", 0)),
            unmigratable=int(data.get("unmigratable", 0)),
            written_by_index=dict(data.get("written_by_index") or {}),
            failed_reasons={str(k): int(v) for k, v in (data.get("failed_reasons") or {}).items()},
            failed_examples={str(k): str(v) for k, v in (data.get("failed_examples") or {}).items()},
        )

    def copy(self) -> Counters:
        return Counters.from_json(self.to_json())


@dataclass
class UnitRecord:
    """A lease document as read back, with the sequence numbers that guard the next write."""

    doc_id: str
    body: dict[str, Any]
    seq_no: int
    primary_term: int

    @property
    def unit(self) -> WorkUnit:
        return WorkUnit(self.body["index"], int(self.body["shard"]), int(self.body.get("total", 0)))

    @property
    def status(self) -> str:
        return str(self.body["status"])

    @property
    def expired(self) -> bool:
        return int(self.body.get("expires_at") or 0) < now_ms()

    @property
    def counters(self) -> Counters:
        return Counters.from_json(self.body.get("counters"))

    @property
    def cursor(self) -> dict[str, Any] | None:
        return self.body.get("cursor")


class Lease:
    """A unit this worker holds. Every write is conditional on the last one we made."""

    def __init__(self, store: LeaseStore, record: UnitRecord, holder: str) -> None:
        self._store = store
        self.record = record
        self.holder = holder

    @property
    def unit(self) -> WorkUnit:
        return self.record.unit

    def checkpoint(self, cursor: dict[str, Any] | None, counters: Counters) -> None:
        """Store the cursor (everything before it is acknowledged) and renew the lease."""
        self._write({"cursor": cursor, "counters": counters.to_json()})

    def renew(self) -> None:
        self._write({})

    def complete(self, cursor: dict[str, Any] | None, counters: Counters) -> None:
        self._write(
            {"cursor": cursor, "counters": counters.to_json(), "status": "done", "expires_at": 0, "done_at": now_ms()}
        )

    def _write(self, changes: dict[str, Any]) -> None:
        body = dict(self.record.body)
        body.update({"expires_at": now_ms() + self._store.lease_ms, "updated_at": now_ms()})
        body.update(changes)
        self.record = self._store._conditional_put(self.record, body)


class LeaseStore:
    """The working-state index of one backfill stage, seen from one worker."""

    def __init__(
        self, client: OpenSearch, index: str, gen: str, *, lease_seconds: float = 60.0, retry_deadline_s: float = 600.0
    ) -> None:
        self.client = client
        self.index = index
        self.gen = gen
        self.lease_ms = int(lease_seconds * 1000)
        self.retry_deadline_s = retry_deadline_s

    # -- setup -------------------------------------------------------------------------

    def ensure_index(self) -> None:
        def create() -> None:
            if not self.client.indices.exists(index=self.index):
                self.client.indices.create(index=self.index, body=STATE_INDEX_SETTINGS, ignore=400)

        self._retry(create, "create the working-state index")

    def unit_doc_id(self, unit: WorkUnit) -> str:
        return f"{self.gen}:{unit.index}:{unit.shard}"

    def register(self, units: Iterable[WorkUnit], meta: dict[str, Any]) -> dict[str, Any]:
        """Create the meta and unit documents of this generation unless they exist; return the meta.

        Create-if-absent makes this safe for several processes (an apply and `mactl worker`s)
        to run at once: the first writer wins and everyone reads the same meta.
        """
        meta_id = f"meta:{self.gen}"
        lines: list[dict[str, Any]] = [
            {"create": {"_index": self.index, "_id": meta_id}},
            {"kind": "meta", "gen": self.gen, "created_at": now_ms(), **meta},
        ]
        for unit in units:
            lines.append({"create": {"_index": self.index, "_id": self.unit_doc_id(unit)}})
            lines.append(
                {
                    "kind": "unit",
                    "gen": self.gen,
                    "unit": unit.key,
                    "index": unit.index,
                    "shard": unit.shard,
                    "total": unit.total,
                    "status": "pending",
                    "holder": None,
                    "expires_at": 0,
                    "cursor": None,
                    "counters": Counters().to_json(),
                    "claims": [],
                }
            )
        self._retry(lambda: self.client.bulk(body=lines, refresh="true"), "register work units")
        found = self.read_meta()
        assert found is not None
        return found

    def read_meta(self) -> dict[str, Any] | None:
        """This generation's meta document; None when it (or the whole index) does not exist yet."""
        try:
            got = self._retry(lambda: self.client.get(index=self.index, id=f"meta:{self.gen}"), "read the stage meta")
            # opensearch-py is untyped: a GET _doc response holds the document under `_source`
            return cast(dict[str, Any], got["_source"])
        except NotFoundError:
            return None

    def drop_other_generations(self) -> int:
        """Remove lease documents of earlier generations (by id: needs no reindex module)."""
        stale = [h["_id"] for h in self._search({"bool": {"must_not": [{"term": {"gen": self.gen}}]}})]
        if stale:
            body = [{"delete": {"_index": self.index, "_id": i}} for i in stale]
            self._retry(lambda: self.client.bulk(body=body, refresh="true"), "drop stale leases")
        return len(stale)

    # -- reading -----------------------------------------------------------------------

    def units(self, *, unfinished_only: bool = False) -> list[UnitRecord]:
        """Every unit document of this generation, freshly refreshed (the monitor's view)."""
        query: dict[str, Any] = {"bool": {"filter": [{"term": {"gen": self.gen}}, {"term": {"kind": "unit"}}]}}
        if unfinished_only:
            query["bool"]["must_not"] = [{"term": {"status": "done"}}]
        hits = self._search(query)
        return [UnitRecord(h["_id"], h["_source"], h["_seq_no"], h["_primary_term"]) for h in hits]

    def get(self, doc_id: str) -> UnitRecord:
        got = self._retry(lambda: self.client.get(index=self.index, id=doc_id), f"read lease {doc_id}")
        return UnitRecord(got["_id"], got["_source"], got["_seq_no"], got["_primary_term"])

    def all_done(self) -> bool:
        return not self.units(unfinished_only=True) and self.read_meta() is not None

    # -- claiming ----------------------------------------------------------------------

    def claim(self, holder: str) -> Lease | None:
        """Take one pending unit, or one whose lease expired; None if there is none right now."""
        candidates = [u for u in self.units(unfinished_only=True) if u.status != "done"]
        random.shuffle(candidates)  # spread racing workers over different units
        candidates.sort(key=lambda u: 0 if u.status == "pending" else 1)
        for candidate in candidates:
            if candidate.status == "leased" and not candidate.expired:
                continue
            current = self.get(candidate.doc_id)  # realtime: the search may lag
            if current.status == "done" or (current.status == "leased" and not current.expired):
                continue
            body = dict(current.body)
            claims = list(body.get("claims") or [])
            claims.append(
                {
                    "holder": holder,
                    "at": now_ms(),
                    "from_cursor": current.cursor is not None,
                    "took_over": current.body.get("holder"),
                }
            )
            body.update(
                {"status": "leased", "holder": holder, "expires_at": now_ms() + self.lease_ms, "claims": claims}
            )
            try:
                record = self._conditional_put(current, body)
            except LeaseLost:
                continue
            return Lease(self, record, holder)
        return None

    # -- plumbing ----------------------------------------------------------------------

    def _conditional_put(self, record: UnitRecord, body: dict[str, Any]) -> UnitRecord:
        def put() -> dict[str, Any]:
            # opensearch-py is untyped: the index API answers with a JSON object
            return cast(
                dict[str, Any],
                self.client.index(
                    index=self.index,
                    id=record.doc_id,
                    body=body,
                    if_seq_no=record.seq_no,
                    if_primary_term=record.primary_term,
                ),
            )

        try:
            resp = self._retry(put, f"update lease {record.doc_id}")
        except ConflictError:
            # A retried request may have succeeded before its connection broke: check whether
            # the stored document is exactly ours before declaring the lease lost.
            current = self.get(record.doc_id)
            if current.body == body:
                return current
            raise LeaseLost(record.doc_id) from None
        return UnitRecord(record.doc_id, body, resp["_seq_no"], resp["_primary_term"])

    def _search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Every matching document, read through a scroll: one consistent view however many
        units there are, in index order, without sorting on `_id` (fielddata on `_id` is
        deprecated on OpenSearch 2 and warns on every call)."""

        def run() -> list[dict[str, Any]]:
            self.client.indices.refresh(index=self.index)
            body = {"query": query, "size": 1000, "sort": ["_doc"], "seq_no_primary_term": True}
            resp = self.client.search(index=self.index, body=body, scroll="1m")
            scroll_id = resp.get("_scroll_id")
            out: list[dict[str, Any]] = []
            try:
                while hits := resp["hits"]["hits"]:
                    out.extend(hits)
                    if len(hits) < 1000:
                        break
                    resp = self.client.scroll(body={"scroll": "1m", "scroll_id": scroll_id})
                    scroll_id = resp.get("_scroll_id", scroll_id)
            finally:
                if scroll_id:
                    self.client.clear_scroll(body={"scroll_id": [scroll_id]}, ignore=[404])
            return out

        return self._retry(run, "read the work units")

    def _retry(self, call: Callable[[], T], what: str) -> T:
        return with_retry(call, deadline_s=self.retry_deadline_s, what=what)
