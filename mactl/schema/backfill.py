"""Inputs of the `backfill` stage (RFS): documents read from snapshot files, written to the target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from mactl.schema.common import ClusterRef, HttpUrl, IndexFilter, Model, NonEmptyStr, SnapshotRepository, TransformSpec


class Sample(Model):
    percent: float | None = None
    maxDocsPerIndex: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Sample:
        if (self.percent is None) == (self.maxDocsPerIndex is None):
            raise ValueError("sample takes exactly one of `percent` or `maxDocsPerIndex`")
        if self.percent is not None and not 0 < self.percent <= 100:
            raise ValueError("sample.percent must be in (0, 100]")
        return self


class DeadLetter(Model):
    location: NonEmptyStr  # a local folder or s3://bucket/prefix
    endpoint: HttpUrl | None = None  # S3 endpoint override (MinIO, moto); AWS when unset


class _BackfillWiring(Model):
    target: ClusterRef
    repository: SnapshotRepository
    snapshotName: str


class BackfillUserInputs(Model):
    """The backfill inputs a user sets in a `documentBackfillConfigs` entry."""

    indices: list[IndexFilter] = []
    transforms: list[TransformSpec] = []
    sample: Sample | None = None
    workers: PositiveInt | None = None
    maxBatchDocs: PositiveInt = 1000
    maxBatchBytes: PositiveInt = 10 * 1024 * 1024
    maxInFlight: PositiveInt = 2
    maxMbps: PositiveFloat | None = None
    deadLetter: DeadLetter | None = None
    coordinator: ClusterRef | None = None
    rollbackMode: Literal["delete_by_query", "recreate"] = "delete_by_query"
    leaseSeconds: float = Field(60.0, gt=0)  # a unit's lease lasts this long without a checkpoint
    retryTimeoutSeconds: float = Field(600.0, gt=0)  # how long a worker waits out an unavailable target
    verifyCounts: bool = True  # exit check: target count per index == snapshot live count less sampling/drops/DLQ


class BackfillInputs(BackfillUserInputs, _BackfillWiring):
    """A backfill stage's inputs: the options, and what mactl derives from the config."""
