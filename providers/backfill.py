"""Backfill stage (RFS): documents read from snapshot files, written to the target.

`apply` sets the stage up in its working-state index, starts `workers` local worker
processes (default: the machine's cores) and watches the leases until every unit is
done; extra workers may join from any host with `mactl worker ADDR`. It then runs the
exit check (the document ledger balances with the snapshot's live top-level count, and
the target holds what the ledger says was written) and fails the stage on a difference.
A run that dead-lettered documents finishes with `completeWithErrors` in its outputs,
which the engine records as the status `complete_with_errors`. The work itself lives in
`mactl.backfill`. `sample` is deliberately not in `replace_on`: a larger sample is a
superset of a smaller one, so growing it only adds documents (an update in place).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mactl.providers.base import BaseProvider, Progress, StageContext
from opensearchpy.exceptions import NotFoundError

from mactl.errors import ProviderError
from mactl.schema.backfill import BackfillInputs

Context = StageContext[BackfillInputs]


class BackfillProvider(BaseProvider[BackfillInputs]):
    type = "backfill"
    Inputs = BackfillInputs
    replace_on = frozenset({"target", "repository", "snapshotName", "indices", "transforms", "coordinator"})
    available = True

    def validate(self, inputs: BackfillInputs) -> list[str]:
        from mactl.indexfilter import validate_filters

        problems = validate_filters(inputs.indices)
        if inputs.workers is not None and inputs.workers < 1:
            problems.append("workers must be at least 1")
        if inputs.maxBatchDocs < 1 or inputs.maxBatchBytes < 1024:
            problems.append("maxBatchDocs must be >= 1 and maxBatchBytes >= 1024")
        if inputs.maxInFlight < 1:
            problems.append("maxInFlight must be at least 1")
        if inputs.maxThroughputMbps is not None and inputs.maxThroughputMbps <= 0:
            problems.append("maxThroughputMbps must be positive")
        return problems

    def apply(self, ctx: Context) -> dict[str, Any]:
        from mactl.backfill.coordinator import run_stage
        from mactl.backfill.prepare import lease_store
        from mactl.backfill.progress import RateTracker, Snapshot, one_line
        from mactl.backfill.rollback import planned_method
        from mactl.backfill.source import snapshot_uuid
        from mactl.backfill.spec import build_spec
        from mactl.backfill.verify import check_counts, errors_summary, per_index_outputs
        from mactl.cluster import client_for

        inputs = ctx.inputs
        snapshot = _upstream_snapshot_name(ctx) or inputs.snapshotName
        spec = build_spec(
            ctx.address,
            inputs,
            workdir=ctx.workdir,
            transforms_base_dir=ctx.config_dir,
            snapshot=snapshot,
            snapshot_uuid=snapshot_uuid(inputs.repository, snapshot),
        )
        ctx.checkpoint(
            {
                "stateIndex": spec.state_index,
                "generation": spec.gen,
                "deadLetter": spec.deadletter,
                "workdir": str(ctx.workdir),
            }
        )

        def report(snap: Snapshot, rates: RateTracker) -> None:
            ctx.progress(Progress(snap.done_docs, snap.total_docs, "docs", one_line(snap, rates)))

        run = run_stage(
            spec,
            workers=inputs.workers or os.cpu_count() or 1,
            workdir=ctx.workdir,
            on_progress=report,
            cancelled=ctx.cancelled,
            log=ctx.log,
        )
        target = client_for(inputs.target)
        meta = lease_store(spec).read_meta() or {}
        unmigratable: dict[str, str] = dict(meta.get("unmigratable") or {})
        check = check_counts(
            target,
            run.snapshot,
            deadline_s=inputs.retryTimeoutSeconds,
            unmigratable=unmigratable,
            same_names=not inputs.transforms,
        )
        failed = sum(p.failed for p in run.snapshot.indices.values())
        errors = errors_summary(check.ledger)
        outputs: dict[str, Any] = {
            "snapshotName": spec.snapshot,
            "stateIndex": spec.state_index,
            "generation": spec.gen,
            "units": run.snapshot.units_total,
            "indices": per_index_outputs(run.snapshot),
            "targetIndices": check.target,
            "ledger": check.ledger,
            "unmigratable": unmigratable,
            "differences": check.differences,
            "deadLetter": {"location": spec.deadletter, "documents": failed},
            "rollbackMethod": planned_method(target, inputs.rollbackMode),
            # For the validate stage, which sees only its dependencies' outputs: how the
            # documents were chosen and changed, and the index bodies metadata created.
            "transforms": [t.model_dump(mode="json") for t in inputs.transforms],
            "sample": inputs.sample.model_dump(mode="json") if inputs.sample else None,
            "definitions": {
                i: d for i in sorted(check.target) if (d := _metadata_definition(ctx.upstream, i)) is not None
            },
        }
        if errors is not None:
            outputs["completeWithErrors"] = errors
            ctx.log(f"complete with errors: {errors['summary']}")
        for line in check.differences:
            ctx.log(f"count check: {line}")
        not_migratable = {i: int(r["notMigratable"]) for i, r in check.ledger.items() if r.get("notMigratable")}
        if not_migratable and inputs.onUnmigratable != "skip":
            raise ProviderError(
                f"{ctx.address}: documents that cannot be backfilled (no _source in the snapshot): "
                + ", ".join(f"{i} {n}" for i, n in sorted(not_migratable.items())),
                hint="leave them out with `onUnmigratable: skip` (they stay in the ledger as not migratable)",
            )
        if check.differences and inputs.verifyCounts:
            raise ProviderError(
                f"{ctx.address}: the target's document counts differ from the snapshot's: "
                + "; ".join(check.differences),
                hint="the leases are kept: inspect the differences, then apply again (or set verifyCounts: false)",
            )
        return outputs

    def plan_notes(self, inputs: BackfillInputs) -> list[str]:
        """For `plan`: the selected indices the snapshot holds that cannot be backfilled, read
        from the snapshot's index metadata (nothing when the snapshot is not there yet).

        Only for a file-system repository: a plan must stay quick, and an S3 client waits out
        an unreachable endpoint for minutes. Apply checks every repository before writing."""
        from pathlib import Path

        from mactl.backfill.source import open_snapshot_repository
        from mactl.backfill.units import unmigratable_indices
        from mactl.indexfilter import split_builtin_exclusions

        location = inputs.repository.location
        if inputs.repository.type != "fs" or not location or not Path(str(location)).is_dir():
            return []
        repo = open_snapshot_repository(inputs.repository)
        names = list(repo.snapshot(inputs.snapshotName).indices)
        kept = split_builtin_exclusions(names, inputs.indices)[0]
        found = unmigratable_indices(repo, inputs.snapshotName, kept)
        then = (
            "skipped (onUnmigratable: skip), counted in the ledger as not migratable"
            if inputs.onUnmigratable == "skip"
            else "the stage will fail before writing any document (set onUnmigratable: skip to leave them out)"
        )
        return [f"index {index} cannot be backfilled: {why}; {then}" for index, why in sorted(found.items())]

    def rollback(self, ctx: Context) -> None:
        from mactl.backfill import deadletter
        from mactl.backfill.prepare import lease_store
        from mactl.backfill.rollback import planned_method, remove_documents
        from mactl.backfill.spec import build_spec
        from mactl.cluster import client_for

        inputs = ctx.inputs
        spec = build_spec(ctx.address, inputs, workdir=ctx.workdir)
        target = client_for(inputs.target)
        prior = dict(ctx.prior_outputs or {})
        indices = set(prior.get("targetIndices") or {})
        store = lease_store(spec)
        try:
            for unit in _all_generations_units(store):
                indices.update((unit.get("counters") or {}).get("written_by_index") or {})
                if not inputs.transforms:
                    indices.add(unit["index"])
        except NotFoundError:
            pass  # no working state: nothing recorded beyond the outputs
        method = prior.get("rollbackMethod") or planned_method(target, inputs.rollbackMode)
        used: dict[str, str] = {}
        for index in sorted(indices):
            used[index] = remove_documents(target, index, method, _metadata_definition(ctx.upstream, index))
        store.client.indices.delete(index=spec.state_index, ignore=[404])
        deadletter.remove_all(deadletter.Location(spec.deadletter, spec.address, spec.deadletter_endpoint))
        ctx.checkpoint({"rolledBack": used})
        ctx.log("rolled back: " + (", ".join(f"{i} by {m}" for i, m in used.items()) or "nothing was written"))

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return dict(ctx.prior_outputs) if ctx.prior_outputs is not None else None


def _upstream_snapshot_name(ctx: Context) -> str | None:
    """The snapshot stage's recorded name, when the backfill follows it directly (it may
    differ from the config's, e.g. when dated)."""
    for outputs in ctx.upstream_of_type("snapshot"):
        if outputs.get("name"):
            return str(outputs["name"])
    return None


def _all_generations_units(store: Any) -> list[dict[str, Any]]:
    resp = store.client.search(index=store.index, body={"size": 10000, "query": {"term": {"kind": "unit"}}})
    return [h["_source"] for h in resp["hits"]["hits"]]


def _metadata_definition(upstream: Mapping[str, Mapping[str, Any]], index: str) -> dict[str, Any] | None:
    """The index definition the metadata stage recorded, if it recorded one for `index`."""
    for address, outputs in upstream.items():
        if address.split(".", 1)[0] != "metadata":
            continue
        for key in ("definitions", "indices", "created"):
            found = outputs.get(key)
            if isinstance(found, Mapping):
                definition = found.get(index)
                if isinstance(definition, Mapping) and ("mappings" in definition or "settings" in definition):
                    return {k: definition[k] for k in ("settings", "mappings", "aliases") if k in definition}
    return None
