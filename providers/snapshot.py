"""Snapshot stage: takes a snapshot of the source (or imports an existing one).

Inputs schema and replacement rules only; apply/rollback/read land with the snapshot
provider issue.
"""

from __future__ import annotations

from typing import ClassVar

from mactl.config.common import ClusterRef, IndexFilter, Model, SnapshotRepository
from mactl.providers.base import BaseProvider


class Inputs(Model):
    source: ClusterRef
    repository: SnapshotRepository
    snapshotName: str
    existing: bool = False  # True: import `snapshotName`, never create or delete it
    indices: list[IndexFilter] = []  # a name is selected when it passes every filter
    includeGlobalState: bool = True
    maxSnapshotRateMbPerNode: float | None = None


class SnapshotProvider(BaseProvider):
    type = "snapshot"
    Inputs: ClassVar = Inputs
    replace_on = frozenset({"source", "repository", "snapshotName", "existing", "indices", "includeGlobalState"})
    available = False
