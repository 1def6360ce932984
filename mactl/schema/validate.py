"""Inputs of the `validate` stage: what is checked on the target, and what makes it pass."""

from __future__ import annotations

from typing import Any

from pydantic import Field, NonNegativeInt, PositiveInt

from mactl.schema.common import ClusterRef, IndexFilter, Model, SnapshotRepository


class Thresholds(Model):
    maxCountDiff: int = Field(
        0, description="Per index (and per query's hit count): how far the target's count may be from the expected one."
    )
    minSampleMatch: float = Field(
        1.0, description="Per index: the share of sampled documents whose `_source` must equal the expected one."
    )
    minStatusMatchRate: float = Field(
        0.99, description="Replayed requests: the share whose target outcome must match the source's."
    )
    maxFailedDocs: int = Field(
        0,
        description="Per index: how many documents the backfill may have dead-lettered (or left unaccounted for) and still pass.",
    )
    maxLatencyRatio: float | None = Field(
        None, description="Replayed requests: the highest allowed target/source median latency; unchecked when unset."
    )


class VectorSearch(Model):
    """A k-NN search to compare: the same query vectors on the source field and the target field."""

    field: str
    targetField: str | None = None  # when a transform renamed the field
    k: PositiveInt = 10
    vectors: list[list[int | float]] = Field(default_factory=list)  # the query vectors; else from documents
    fromDocuments: NonNegativeInt = 3  # without `vectors`: this many source documents' own vectors
    numCandidates: PositiveInt = 100
    minOverlap: float = Field(1.0, ge=0, le=1)  # share of the source's top k the target must return too


class Query(Model):
    """One parity query: run on the source index and the target index, compared."""

    index: str
    targetIndex: str | None = None  # when a transform renamed the index
    name: str | None = None
    query: dict[str, Any] = Field(default_factory=lambda: {"match_all": {}})
    sort: list[Any] | None = None  # with a sort the top ids are compared in order, else as a set
    size: NonNegativeInt = 10
    vector: VectorSearch | None = None  # a k-NN parity query instead of `query`


class _ValidateWiring(Model):
    source: ClusterRef
    target: ClusterRef
    repository: SnapshotRepository | None = None
    snapshotName: str | None = None


class ValidateUserInputs(Model):
    """The validate inputs a user sets in a source's `validation` block."""

    indices: list[IndexFilter] = Field(
        [], description="Which indices to check (default: every index the upstream backfills wrote)."
    )
    sampleSize: int = Field(
        100, description="Documents per index read back from the snapshot, transformed, and compared with the target's."
    )
    queries: list[dict[str, Any]] = Field(
        [],
        description="Parity queries `{index, query, targetIndex?, name?, sort?, size?}`: hit counts and top ids compared (in order with a `sort`); `{index, vector: {field, k?, vectors?, fromDocuments?, minOverlap?}}` compares k-NN top hits.",
    )
    thresholds: Thresholds = Field(
        Thresholds(), description="What makes the stage pass; a failure names every index and check that failed."
    )
    checkMappings: bool = Field(
        True, description="Compare each index's mappings and settings with what the metadata stage created."
    )
    seed: int | None = Field(None, description="Fix which documents are sampled (random on every run when unset).")
    maxScanDocsPerIndex: int = Field(
        1_000_000, description="The sample is drawn from at most this many snapshot documents per index."
    )
    settleSeconds: float = Field(
        60.0,
        ge=0,
        description="With a replay upstream the source is live: how long mismatches are re-checked while a following replayer catches up.",
    )


class ValidateInputs(ValidateUserInputs, _ValidateWiring):
    """A validate stage's inputs: the options, and what mactl derives from the config."""
