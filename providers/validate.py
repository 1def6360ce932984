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
from typing import Any

from mactl.providers.base import BaseProvider, PreflightContext, StageContext
from mactl.state.workdir import StageFiles

from mactl.errors import ProviderError
from mactl.schema.validate import Query, ValidateInputs

Context = StageContext[ValidateInputs]


class ValidateProvider(BaseProvider[ValidateInputs]):
    type = "validate"
    Inputs = ValidateInputs
    replace_on = frozenset()  # every input only changes what is checked: re-run in place
    available = True

    def validate(self, inputs: ValidateInputs) -> list[str]:
        from mactl.indexfilter import validate_filters

        problems = validate_filters(inputs.indices)
        if inputs.sampleSize < 0:
            problems.append("sampleSize: must be 0 or more")
        t = inputs.thresholds
        if t.maxCountDiff < 0:
            problems.append("thresholds.maxCountDiff: must be 0 or more")
        if t.maxFailedDocs < 0:
            problems.append("thresholds.maxFailedDocs: must be 0 or more")
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
                    "(a query is {index, query, optional targetIndex/name/sort/size}, or {index, vector: {field, ...}})"
                )
        return problems

    def preflight(self, inputs: ValidateInputs, ctx: PreflightContext) -> list[str]:
        from mactl.providers.preflight import cluster_problem, snapshot_problem

        problems = [cluster_problem(inputs.source, "source", ctx), cluster_problem(inputs.target, "target", ctx)]
        if inputs.repository is not None and inputs.snapshotName and not ctx.redoes("snapshot"):
            problems.append(snapshot_problem(inputs.repository, inputs.snapshotName, ctx))
        return [p for p in problems if p]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from mactl.audit.checks import run_validation

        inputs = ctx.inputs
        queries = [Query.model_validate(q) for q in inputs.queries]
        report = run_validation(ctx, inputs, queries)
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        StageFiles(ctx.workdir).validation_report.write_text(json.dumps(report, indent=2, default=str))
        outputs = {"passed": report["passed"], "failures": report["failures"], "report": report}
        if not report["passed"]:
            ctx.checkpoint({"report": report})  # so `mactl audit` can show why, from the state
            raise ProviderError(
                f"{ctx.address}: validation failed ({len(report['failures'])} check(s)):\n"
                + "\n".join(f"  {line}" for line in report["failures"]),
                hint=f"see `mactl audit {ctx.address}` (or --html FILE) for the full report",
            )
        return outputs

    def rollback(self, ctx: Context) -> None:
        """Validation changes nothing on any cluster: rolling it back only forgets the report."""
        ctx.log(f"{ctx.address}: nothing to undo (validation only reads)")
