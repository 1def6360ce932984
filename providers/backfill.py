"""Backfill stage (RFS): documents read from snapshot files, written to the target.

Inputs schema and replacement rules only; apply/rollback/read land with the backfill
provider issue. `sample` is deliberately not in `replace_on`: a larger sample is a
superset of a smaller one, so growing it only adds documents (an update in place).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from mactl.config.common import ClusterRef, IndexFilter, Model, SnapshotRepository, TransformSpec
from mactl.providers.base import BaseProvider


class Sample(Model):
    percent: float | None = None
    maxDocsPerIndex: int | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "Sample":
        if (self.percent is None) == (self.maxDocsPerIndex is None):
            raise ValueError("sample takes exactly one of `percent` or `maxDocsPerIndex`")
        if self.percent is not None and not 0 < self.percent <= 100:
            raise ValueError("sample.percent must be in (0, 100]")
        return self


class DeadLetter(Model):
    location: str  # a local folder or s3://bucket/prefix


class Inputs(Model):
    target: ClusterRef
    repository: SnapshotRepository
    snapshotName: str
    indices: list[IndexFilter] = []
    transforms: list[TransformSpec] = []
    sample: Sample | None = None
    workers: int | None = None
    maxBatchDocs: int = 1000
    maxBatchBytes: int = 10 * 1024 * 1024
    maxInFlight: int = 2
    maxMbps: float | None = None
    deadLetter: DeadLetter | None = None
    coordinator: ClusterRef | None = None
    rollbackMode: Literal["delete_by_query", "recreate"] = "delete_by_query"


class BackfillProvider(BaseProvider):
    type = "backfill"
    Inputs: ClassVar = Inputs
    replace_on = frozenset({"target", "repository", "snapshotName", "indices", "transforms", "coordinator"})
    available = False
