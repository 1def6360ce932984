"""Validation stage: proves the target is right (counts, sampled docs, mappings, queries, replay).

It reads what the upstream stages recorded (the backfills' per-index counts, sampling,
transforms and the index definitions metadata created; the replay's tuples file), looks
at both clusters and the snapshot, and writes one report into its outputs, so `mactl
audit` renders it from the state without re-running anything. The thresholds decide
pass or fail; a failure names every index and check that failed. The checks themselves
live in `mactl.audit.checks`; this module only wires them to the stage contract. It
never writes to either cluster (it refreshes target and source indices before counting).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from mactl.providers.base import BaseProvider, StageContext
from pydantic import Field

from mactl.config.common import ClusterRef, IndexFilter, Model, SnapshotRepository
from mactl.errors import ProviderError


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
    maxLatencyRatio: float | None = Field(
        None, description="Replayed requests: the highest allowed target/source median latency; unchecked when unset."
    )


class Query(Model):
    """One parity query: run on the source index and the target index, compared."""

    index: str
    targetIndex: str | None = None  # when a transform renamed the index
    name: str | None = None
    query: dict[str, Any] = Field(default_factory=lambda: {"match_all": {}})
    sort: list[Any] | None = None  # with a sort the top ids are compared in order, else as a set
    size: int = 10


class Inputs(Model):
    source: ClusterRef
    target: ClusterRef
    repository: SnapshotRepository | None = None
    snapshotName: str | None = None
    indices: list[IndexFilter] = Field(
        [], description="Which indices to check (default: every index the upstream backfills wrote)."
    )
    sampleSize: int = Field(
        100, description="Documents per index read back from the snapshot, transformed, and compared with the target's."
    )
    queries: list[dict[str, Any]] = Field(
        [],
        description="Parity queries `{index, query, targetIndex?, name?, sort?, size?}`: hit counts and top ids compared (in order with a `sort`).",
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


class ValidateProvider(BaseProvider):
    type = "validate"
    Inputs: ClassVar = Inputs
    replace_on = frozenset()  # every input only changes what is checked: re-run in place
    available = True

    def validate(self, inputs: Inputs) -> list[str]:  # type: ignore[override]
        from mactl.indexfilter import validate_filters

        problems = validate_filters(inputs.indices)
        if inputs.sampleSize < 0:
            problems.append("sampleSize: must be 0 or more")
        t = inputs.thresholds
        if t.maxCountDiff < 0:
            problems.append("thresholds.maxCountDiff: must be 0 or more")
        for name in ("minSampleMatch", "minStatusMatchRate"):
            if not 0 <= getattr(t, name) <= 1:
                problems.append(f"thresholds.{name}: must be between 0 and 1")
        if t.maxLatencyRatio is not None and t.maxLatencyRatio <= 0:
            problems.append("thresholds.maxLatencyRatio: must be positive")
        for i, raw in enumerate(inputs.queries):
            try:
                Query.model_validate(raw)
            except ValueError as exc:
                first = str(exc).splitlines()
                problems.append(
                    f"queries[{i}]: {first[1].strip() if len(first) > 1 else first[0]} "
                    "(a query is {index, query, optional targetIndex/name/sort/size})"
                )
        return problems

    def apply(self, ctx: StageContext) -> dict[str, Any]:
        from mactl.audit.checks import run_validation

        inputs: Inputs = ctx.inputs  # type: ignore[assignment]
        queries = [Query.model_validate(q) for q in inputs.queries]
        report = run_validation(ctx, inputs, queries)
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        (ctx.workdir / "report.json").write_text(json.dumps(report, indent=2, default=str))
        outputs = {"passed": report["passed"], "failures": report["failures"], "report": report}
        if not report["passed"]:
            ctx.checkpoint({"report": report})  # so `mactl audit` can show why, from the state
            raise ProviderError(
                f"{ctx.address}: validation failed ({len(report['failures'])} check(s)):\n"
                + "\n".join(f"  {line}" for line in report["failures"]),
                hint=f"see `mactl audit {ctx.address}` (or --html FILE) for the full report",
            )
        return outputs

    def rollback(self, ctx: StageContext) -> None:
        """Validation changes nothing on any cluster: rolling it back only forgets the report."""
        ctx.log(f"{ctx.address}: nothing to undo (validation only reads)")
