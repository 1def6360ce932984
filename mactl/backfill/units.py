"""Work units: one (index, shard) of the snapshot, the smallest piece a worker claims.

Listing them needs only the snapshot's metadata (shard counts, live document counts),
never the documents themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mactl.indexfilter import split_builtin_exclusions
from mactl.schema.common import IndexFilter

if TYPE_CHECKING:
    from mactl.snapshot_reader.repository import Repository


@dataclass(frozen=True, order=True)
class WorkUnit:
    index: str
    shard: int
    total: int = 0  # live top-level documents in the snapshot's shard (nested children excluded)

    @property
    def key(self) -> str:
        return f"{self.index}/{self.shard}"


def snapshot_index_names(repo: Repository, snapshot: str) -> list[str]:
    """Index names of one snapshot."""
    return list(repo.snapshot(snapshot).indices)


def list_units(repo: Repository, snapshot: str, filters: Sequence[IndexFilter]) -> tuple[list[WorkUnit], list[str]]:
    """The units of the selected indices, and the names a built-in rule left out."""
    kept, excluded = split_builtin_exclusions(snapshot_index_names(repo, snapshot), filters)
    units = [
        WorkUnit(index, shard, int(repo.top_level_doc_count(snapshot, index, shard)))
        for index in kept
        for shard in range(int(repo.shard_count(snapshot, index)))
    ]
    return units, [e.name for e in excluded]


def unmigratable_indices(repo: Repository, snapshot: str, indices: Sequence[str]) -> dict[str, str]:
    """The indices whose documents the reader cannot rebuild, each with the reason.

    Read from the snapshot's index metadata only: `_source` disabled, or Elasticsearch 8's
    synthetic source (`_source.mode`, `index.mapping.source.mode`, logsdb/time_series index
    modes), so the snapshot holds no document bodies (see `sourceless_reason`).
    """
    from mactl.snapshot_reader.repository import sourceless_reason

    found: dict[str, str] = {}
    for index in indices:
        reason = sourceless_reason(repo.index_metadata(snapshot, index))
        if reason is not None:
            found[index] = reason
    return found
