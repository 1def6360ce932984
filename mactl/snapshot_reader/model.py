"""The plain data the reader hands out: snapshots, metadata, documents and resume cursors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mactl.snapshot_reader.errors import SnapshotReaderError


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot of the repository, as `index-N` (and its `snap-*.dat`) describe it."""

    name: str
    uuid: str
    state: str  # SUCCESS / PARTIAL / FAILED / IN_PROGRESS / ABORTED / INCOMPATIBLE
    indices: list[str]
    start_time: int | None = None  # epoch millis
    end_time: int | None = None
    version: str | None = None  # the ES/OpenSearch version that took it, when known
    failures: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GlobalMetadata:
    """Cluster-level metadata kept in a snapshot (only when it included the global state)."""

    templates: dict[str, dict[str, Any]]  # legacy `_template`s
    index_templates: dict[str, dict[str, Any]]  # composable `_index_template`s
    component_templates: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class IndexMetadata:
    """One index's settings, mappings and aliases as the snapshot recorded them."""

    name: str
    settings: dict[str, Any]  # nested, like GET <index>/_settings: {"index": {...}}
    mappings: dict[str, Any]  # typeless body; ES 5/6 multi-type: {type: body}
    aliases: dict[str, Any]
    number_of_shards: int
    types: list[str] = field(default_factory=list)  # mapping type names (ES 5/6), [] when typeless
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def flat_settings(self) -> dict[str, Any]:
        return dict(self.raw.get("settings") or {})


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a shard read is: the segment (ordinal in commit order, and name) and doc id.

    `after=cursor` resumes with the first document after this one. Segment names are
    checked on resume so a cursor from another commit fails loudly instead of skipping.
    """

    segment_ordinal: int
    doc: int
    segment: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"segment_ordinal": self.segment_ordinal, "segment": self.segment, "doc": self.doc}

    @classmethod
    def from_json(cls, data: Any) -> Cursor:
        if isinstance(data, str):
            data = json.loads(data)
        try:
            return cls(int(data["segment_ordinal"]), int(data["doc"]), str(data.get("segment", "")))
        except (KeyError, TypeError, ValueError):
            raise SnapshotReaderError(f"not a snapshot-reader cursor: {data!r}") from None


class Document:
    """One live ES document: `source` is the stored `_source` bytes, unchanged.

    A plain slotted class (not a dataclass) and a lazily built `cursor`: a backfill makes
    millions of these, so construction cost matters.
    """

    __slots__ = ("index", "shard", "id", "type", "routing", "source", "_ordinal", "_doc", "_segment")

    def __init__(
        self,
        index: str,
        shard: int,
        id: str,
        type: str | None,
        routing: str | None,
        source: bytes,
        ordinal: int,
        doc: int,
        segment: str,
    ) -> None:
        self.index = index
        self.shard = shard
        self.id = id
        self.type = type
        self.routing = routing
        self.source = source
        self._ordinal = ordinal
        self._doc = doc
        self._segment = segment

    @property
    def cursor(self) -> Cursor:
        return Cursor(self._ordinal, self._doc, self._segment)

    def __repr__(self) -> str:
        return (
            f"Document(index={self.index!r}, shard={self.shard}, id={self.id!r}, type={self.type!r}, "
            f"routing={self.routing!r}, source=<{len(self.source)} bytes>, cursor={self.cursor})"
        )
