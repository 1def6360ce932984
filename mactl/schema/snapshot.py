"""Inputs of the `snapshot` stage: take (or import) a snapshot of the source."""

from __future__ import annotations

from pydantic import PositiveFloat

from mactl.schema.common import ClusterRef, IndexFilter, Model, SnapshotRepository


class _SnapshotWiring(Model):
    source: ClusterRef
    repository: SnapshotRepository
    snapshotName: str
    existing: bool = False  # True: import `snapshotName`, never create or delete it
    indices: list[IndexFilter] = []  # a name is selected when it passes every filter


class SnapshotUserInputs(Model):
    """The snapshot inputs a user sets in a `snapshot-and-migration-configs` entry."""

    includeGlobalState: bool = True
    maxSnapshotRateMbPerNode: PositiveFloat | None = None


class SnapshotInputs(SnapshotUserInputs, _SnapshotWiring):
    """A snapshot stage's inputs: the options, and what mactl derives from the config."""
