"""Inputs of the `backfill` stage (RFS): documents read from snapshot files, written to the target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from mactl.schema.common import ClusterRef, HttpUrl, IndexFilter, Model, NonEmptyStr, SnapshotRepository, TransformSpec
from mactl.schema.executor import KubernetesExecutor, LocalExecutor


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
    # megabits (10^6 bits) per second of _bulk request bytes for the whole stage, shared
    # by its workers (the replay's `maxThroughputMbps` is the same unit); None: no cap.
    # The old spelling `maxMbps` is still read, with a warning (`mactl.config.normalize`).
    maxThroughputMbps: PositiveFloat | None = Field(
        None,
        description="Megabits per second of _bulk requests for the whole stage, shared by its workers "
        "(the replay's unit). Old spelling `maxMbps` accepted with a warning.",
    )
    deadLetter: DeadLetter | None = None
    coordinator: ClusterRef | None = None
    rollbackMode: Literal["delete_by_query", "recreate"] = "delete_by_query"
    leaseSeconds: float = Field(60.0, gt=0)  # a unit's lease lasts this long without a checkpoint
    retryTimeoutSeconds: float = Field(600.0, gt=0)  # how long a worker waits out an unavailable target
    verifyCounts: bool = True  # exit check: the ledger balances with the snapshot, and the target holds what it says
    onUnmigratable: Literal["fail", "skip"] = Field(
        "fail",
        description="An index the reader cannot rebuild (`_source` disabled): `fail` stops the stage before any "
        "document is written and names it; `skip` leaves it out, counted in the ledger as not migratable.",
    )
    executor: LocalExecutor | KubernetesExecutor | None = Field(
        None,
        discriminator="type",
        description="Where the workers run: local processes (unset or `type: local`), or a Kubernetes Job "
        "(`type: kubernetes`, see docs/kubernetes.md).",
    )


class BackfillInputs(BackfillUserInputs, _BackfillWiring):
    """A backfill stage's inputs: the options, and what mactl derives from the config."""
