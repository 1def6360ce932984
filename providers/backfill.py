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

Each index is an instance (`backfill.ADDR["logs"]`), keyed by its name in the snapshot.
Outputs record every selected index's digest (of the document transforms and sampling,
the same for all indices), and `plan_instances` lists the snapshot's selected indices
with it. With `ctx.instances`, apply deletes the documents it wrote to the replaced or
rolled-back indices (by their ids, re-read from the snapshot, as rollback does), then
backfills only the created and replaced ones in a generation of their own, and merges
their ledger rows into the recorded ones: the other indices are not touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from typing import Any

import orjson
from mactl.providers.base import BaseProvider, PreflightContext, Progress, StageContext
from opensearchpy.exceptions import NotFoundError

from mactl.errors import ProviderError
from mactl.schema.backfill import BackfillInputs
from mactl.schema.common import IndexFilter
from mactl.schema.executor import KubernetesExecutor

Context = StageContext[BackfillInputs]


class BackfillProvider(BaseProvider[BackfillInputs]):
    type = "backfill"
    Inputs = BackfillInputs
    replace_on = frozenset({"target", "repository", "snapshotName", "indices", "transforms", "coordinator"})
    available = True
    # Each index is an instance: a filter that adds or drops one touches only that one.
    instance_fields = frozenset({"indices"})

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
        if isinstance(inputs.executor, KubernetesExecutor):
            problems += _kubernetes_problems(inputs)
        return problems

    def preflight(self, inputs: BackfillInputs, ctx: PreflightContext) -> list[str]:
        from mactl.providers.preflight import cluster_problem, kubernetes_problems, snapshot_problem

        problems: list[str | None] = [cluster_problem(inputs.target, "target", ctx)]
        if isinstance(inputs.executor, KubernetesExecutor):
            problems += kubernetes_problems(inputs.executor, ctx)
        if not ctx.redoes("snapshot"):
            name = next(
                (str(o["name"]) for a, o in ctx.upstream.items() if a.startswith("snapshot.") and o.get("name")), None
            )
            problems.append(snapshot_problem(inputs.repository, name or inputs.snapshotName, ctx))
        return [p for p in problems if p]

    def plan_instances(self, ctx: Context) -> dict[str, str] | None:
        """index → digest for every index of the snapshot the filters select.

        None (known after apply) while the snapshot is not taken, for an S3 repository (a
        plan stays quick), and with document transforms, which may rename indices."""
        inputs = ctx.inputs
        snapshot_stages = [a for a in ctx.upstream if a.split(".", 1)[0] == "snapshot"]
        if any(not ctx.upstream[a] for a in snapshot_stages) or inputs.transforms:
            return None
        if inputs.repository.type != "fs":
            return None
        try:
            names = _selected_indices(inputs, _upstream_snapshot_name(ctx) or inputs.snapshotName)
        except Exception:  # noqa: BLE001 - not readable now: known after apply
            return None
        digest = _instance_digest(inputs)
        return {name: digest for name in names}

    def apply(self, ctx: Context) -> dict[str, Any]:
        if ctx.instances is not None:
            return self._apply_instances(ctx, ctx.instances)
        return self._apply(ctx, ctx.inputs)

    def _apply_instances(self, ctx: Context, scope: Mapping[str, str]) -> dict[str, Any]:
        """Only the indices in `scope`: undo the replaced and rolled-back ones' documents,
        backfill the created and replaced ones, merge their records into the prior outputs."""
        from mactl.backfill.prepare import lease_store
        from mactl.backfill.spec import build_spec
        from mactl.cluster import client_for
        from mactl.metadata.target import existing_index_names

        prior = dict(ctx.prior_outputs or {})
        if not scope:
            return prior
        inputs = ctx.inputs
        undo = {k for k, a in scope.items() if a in ("replace", "rollback")}
        redo = sorted(k for k, a in scope.items() if a in ("create", "replace"))
        if undo:
            spec = build_spec(ctx.address, inputs, workdir=ctx.workdir)
            store = lease_store(spec)
            try:
                units: list[dict[str, Any]] | None = _all_generations_units(store)
                metas = _all_generations_meta(store)
            except NotFoundError:
                units, metas = None, {}
            present = existing_index_names(client_for(inputs.target))
            known = set(prior.get("targetIndices") or {}) | set(prior.get("indices") or {}) | undo
            skip = {i for i in known if i not in undo} | {i for i in undo if i not in present}
            used: dict[str, str] = {}
            if undo - skip:
                self._delete_written(ctx, spec, units, metas, prior, skip, used)
            ctx.log("removed the documents of " + ", ".join(sorted(undo)) + (f": {used}" if used else ""))
        merged = {
            key: {k: v for k, v in (prior.get(key) or {}).items() if k not in scope}
            for key in ("indices", "targetIndices", "ledger", "unmigratable", "definitions", "instances")
        }
        differences = [d for d in prior.get("differences") or [] if not any(d.startswith(f"{i} ") for i in scope)]
        outputs = dict(prior)
        if redo:
            narrowed = inputs.model_copy(update={"indices": [*inputs.indices, IndexFilter(names=redo)]})
            # A generation of its own each time: the same indices redone again must not
            # find the last redo's units done.
            fresh = self._apply(ctx, narrowed, gen_salt=os.urandom(4).hex())
            for key in merged:
                merged[key].update(fresh.get(key) or {})
            differences += fresh.get("differences") or []
            outputs.update({k: v for k, v in fresh.items() if k not in merged and k != "differences"})
        outputs.update(merged)
        outputs["differences"] = differences
        return outputs

    def _apply(self, ctx: Context, inputs: BackfillInputs, gen_salt: str = "") -> dict[str, Any]:
        from mactl.backfill.coordinator import run_stage
        from mactl.backfill.prepare import lease_store
        from mactl.backfill.progress import RateTracker, Snapshot, one_line
        from mactl.backfill.rollback import planned_method
        from mactl.backfill.source import snapshot_uuid
        from mactl.backfill.spec import build_spec
        from mactl.backfill.verify import check_counts, errors_summary, per_index_outputs
        from mactl.cluster import client_for

        snapshot = _upstream_snapshot_name(ctx) or inputs.snapshotName
        spec = build_spec(
            ctx.address,
            inputs,
            workdir=ctx.workdir,
            transforms_base_dir=ctx.config_dir,
            snapshot=snapshot,
            snapshot_uuid=snapshot_uuid(inputs.repository, snapshot),
        )
        if gen_salt:
            spec = dataclasses.replace(spec, gen=f"{spec.gen}-{gen_salt}")
        target = client_for(inputs.target)
        baseline = _documents_before(ctx, target)
        ctx.checkpoint(
            {
                "stateIndex": spec.state_index,
                "generation": spec.gen,
                "deadLetter": spec.deadletter,
                "workdir": str(ctx.workdir),
                "documentsBefore": baseline,
            }
        )

        def report(snap: Snapshot, rates: RateTracker) -> None:
            ctx.progress(Progress(snap.done_docs, snap.total_docs, "docs", one_line(snap, rates)))

        if isinstance(inputs.executor, KubernetesExecutor):
            from mactl.executors.kubernetes import run_job

            run = run_job(
                spec,
                inputs.executor,
                config_dir=ctx.config_dir,
                on_progress=report,
                cancelled=ctx.cancelled,
                log=ctx.log,
            )
        else:
            run = run_stage(
                spec,
                workers=inputs.workers or os.cpu_count() or 1,
                workdir=ctx.workdir,
                on_progress=report,
                cancelled=ctx.cancelled,
                log=ctx.log,
            )
        meta = lease_store(spec).read_meta() or {}
        unmigratable: dict[str, str] = dict(meta.get("unmigratable") or {})
        check = check_counts(
            target,
            run.snapshot,
            deadline_s=inputs.retryTimeoutSeconds,
            unmigratable=unmigratable,
            same_names=not inputs.transforms,
            before=baseline,
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
            "instances": _recorded_instances(inputs, snapshot),
            "documentsBefore": baseline,
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

        A plan must stay quick: an S3 repository is read with short timeouts and one attempt,
        and when it does not answer the plan says the check was not made (apply checks every
        repository again before writing any document)."""
        from pathlib import Path

        from mactl.backfill.source import open_snapshot_repository
        from mactl.backfill.units import unmigratable_indices
        from mactl.indexfilter import split_builtin_exclusions
        from mactl.snapshot_reader.errors import RepositoryUnreachableError, SnapshotReaderError

        location = inputs.repository.location
        if inputs.repository.type == "fs" and (not location or not Path(str(location)).is_dir()):
            return []
        try:
            repo = open_snapshot_repository(inputs.repository, quick=True)
            names = list(repo.snapshot(inputs.snapshotName).indices)
            kept = split_builtin_exclusions(names, inputs.indices)[0]
            found = unmigratable_indices(repo, inputs.snapshotName, kept)
        except RepositoryUnreachableError as err:
            return [f"not checked which selected indices can be backfilled ({err}); apply checks before writing"]
        except SnapshotReaderError:
            return []  # no snapshot yet (or not one this reader can read): apply says which
        then = (
            "skipped (onUnmigratable: skip), counted in the ledger as not migratable"
            if inputs.onUnmigratable == "skip"
            else "the stage will fail before writing any document (set onUnmigratable: skip to leave them out)"
        )
        return [f"index {index} cannot be backfilled: {why}; {then}" for index, why in sorted(found.items())]

    def rollback(self, ctx: Context) -> None:
        """Remove exactly the documents this stage wrote, then its working state.

        An index the metadata stage created is emptied whole (the cheap path, by the
        recorded `rollbackMethod`). Any other index, one that was on the target before,
        loses only the documents by the ids this stage wrote, found by re-reading the
        snapshot shards it worked on: documents written there by anyone else stay.
        """
        from mactl.backfill import deadletter
        from mactl.backfill.prepare import lease_store
        from mactl.backfill.rollback import planned_method, remove_documents
        from mactl.backfill.spec import build_spec
        from mactl.cluster import client_for
        from mactl.metadata.target import existing_index_names

        inputs = ctx.inputs
        if isinstance(inputs.executor, KubernetesExecutor):
            # Workers first: no pod may write while the documents are being removed.
            from mactl.executors.kubernetes import delete_stage_job

            if delete_stage_job(ctx.address, inputs.executor, config_dir=ctx.config_dir):
                ctx.log("deleted the stage's Kubernetes Job and its pods")
        spec = build_spec(ctx.address, inputs, workdir=ctx.workdir)
        target = client_for(inputs.target)
        prior = dict(ctx.prior_outputs or {})
        indices = set(prior.get("targetIndices") or {})
        store = lease_store(spec)
        units: list[dict[str, Any]] | None = None
        metas: dict[str, dict[str, Any]] = {}
        try:
            units = _all_generations_units(store)
            metas = _all_generations_meta(store)
            for unit in units:
                indices.update((unit.get("counters") or {}).get("written_by_index") or {})
                if not inputs.transforms:
                    indices.add(unit["index"])
        except NotFoundError:
            pass  # no working state: nothing recorded beyond the outputs
        present = existing_index_names(target)
        created = _metadata_created_indices(ctx.upstream)
        whole = sorted(i for i in indices if i in created and i in present)
        method = prior.get("rollbackMethod") or planned_method(target, inputs.rollbackMode)
        used: dict[str, str] = {}
        for index in whole:
            used[index] = remove_documents(target, index, method, _metadata_definition(ctx.upstream, index))
        skip = set(whole) | created | {i for i in indices if i not in present}
        if inputs.transforms or any(i not in skip for i in indices) or not indices:
            self._delete_written(ctx, spec, units, metas, prior, skip, used)
        store.client.indices.delete(index=spec.state_index, ignore=[404])
        deadletter.remove_all(deadletter.Location(spec.deadletter, spec.address, spec.deadletter_endpoint))
        ctx.checkpoint({"rolledBack": used})
        ctx.log("rolled back: " + (", ".join(f"{i} by {m}" for i, m in used.items()) or "nothing was written"))

    @staticmethod
    def _delete_written(
        ctx: Context,
        spec: Any,
        units: list[dict[str, Any]] | None,
        metas: Mapping[str, Mapping[str, Any]],
        prior: Mapping[str, Any],
        skip: set[str],
        used: dict[str, str],
    ) -> None:
        """Delete, outside `skip`, the documents by the ids the stage wrote (re-read from the snapshot)."""
        from mactl.backfill.doc_transforms import DocumentTransformer
        from mactl.backfill.rollback import delete_documents, written_documents
        from mactl.backfill.source import open_snapshot_repository
        from mactl.cluster import client_for
        from mactl.snapshot_reader.errors import SnapshotReaderError

        inputs = ctx.inputs
        try:
            read_units = _units_to_reread(ctx, spec, units, metas, prior)
            if not inputs.transforms:
                read_units = [u for u in read_units if u.index not in skip]
            if not read_units:
                return
            repo = open_snapshot_repository(inputs.repository)
            transformer = DocumentTransformer(inputs.transforms, base_dir=ctx.config_dir)
            docs = written_documents(repo, read_units, transformer)
            for index, n in delete_documents(client_for(inputs.target), docs, skip=skip).items():
                used[index] = f"delete_by_written_ids ({n} found)"
        except SnapshotReaderError as exc:
            raise ProviderError(
                f"{ctx.address}: cannot re-read the snapshot to find the documents this stage wrote: {exc}",
                hint="the documents are found by their ids in the snapshot; restore the snapshot, or delete them "
                "by hand and remove the stage with `mactl state rm`",
            ) from None

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return dict(ctx.prior_outputs) if ctx.prior_outputs is not None else None


def _selected_indices(inputs: BackfillInputs, snapshot: str) -> list[str]:
    """The snapshot's indices the stage's filters select (built-in exclusions left out)."""
    from mactl.backfill.source import open_snapshot_repository
    from mactl.indexfilter import split_builtin_exclusions

    repo = open_snapshot_repository(inputs.repository)
    return sorted(split_builtin_exclusions(list(repo.snapshot(snapshot).indices), inputs.indices)[0])


def _instance_digest(inputs: BackfillInputs) -> str:
    """What every index's backfill depends on besides its documents: transforms and sampling."""
    data = inputs.model_dump(mode="json", include={"transforms", "sample"})
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _recorded_instances(inputs: BackfillInputs, snapshot: str) -> dict[str, dict[str, str]]:
    """One instance per selected index, as `plan_instances` computes them (none with transforms)."""
    if inputs.transforms:
        return {}
    digest = _instance_digest(inputs)
    return {name: {"digest": digest, "status": "complete"} for name in _selected_indices(inputs, snapshot)}


def _kubernetes_problems(inputs: BackfillInputs) -> list[str]:
    """What a Job's pods cannot do that local workers can: read files beside the config, and
    keep dead letters in the stage's local folder (each pod has a folder of its own)."""
    problems: list[str] = []
    for i, transform in enumerate(inputs.transforms):
        if transform.file:
            problems.append(
                f"transforms[{i}]: a template file ({transform.file}) is not in the worker pods; "
                "with executor kubernetes write the template inline"
            )
    if inputs.deadLetter is None:
        problems.append(
            "executor kubernetes: set deadLetter.location to a place every pod can write (s3://bucket/prefix, "
            "or a folder the nodes share): the default is a local folder of this host"
        )
    return problems


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


def _all_generations_meta(store: Any) -> dict[str, dict[str, Any]]:
    """Each generation's meta document (snapshot name, sampling thresholds), by generation."""
    resp = store.client.search(index=store.index, body={"size": 1000, "query": {"term": {"kind": "meta"}}})
    return {str(h["_source"].get("gen")): h["_source"] for h in resp["hits"]["hits"]}


def _documents_before(ctx: Context, target: Any) -> dict[str, int]:
    """Per index the upstream metadata stage found already on the target (`existing`, or
    `skipped` by `onExisting: skip`), the documents it held before this stage wrote any.

    The count check then expects those plus what the ledger says was written, instead of
    failing on the target's own documents. Counted once, before this stage's first write,
    and recorded (checkpoint, outputs): a resumed run or a later update takes the recorded
    counts, since the index holds this stage's documents by then. An index the metadata
    stage created holds nothing of anyone else's and is not counted.
    """
    for recorded in (
        (ctx.checkpoint_data or {}).get("documentsBefore"),
        (ctx.prior_outputs or {}).get("documentsBefore"),
    ):
        if isinstance(recorded, Mapping):
            return {str(k): int(v) for k, v in recorded.items()}
    counts: dict[str, int] = {}
    for index in sorted(_metadata_found_indices(ctx.upstream)):
        try:
            target.indices.refresh(index=index)
            n = int(target.count(index=index)["count"])
        except NotFoundError:
            continue  # deleted since: it holds nothing now
        if n:
            counts[index] = n
    return counts


def _metadata_found_indices(upstream: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The target indices an upstream metadata stage found there before it (and left alone)."""
    names: set[str] = set()
    for address, outputs in upstream.items():
        if address.split(".", 1)[0] != "metadata":
            continue
        for row in (outputs.get("report") or {}).get("items") or []:
            if (
                isinstance(row, Mapping)
                and row.get("kind") == "index"
                and row.get("outcome") in ("existing", "skipped")
            ):
                names.add(str(row["name"]))
    return names


def _metadata_created_indices(upstream: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The target indices an upstream metadata stage recorded it created."""
    names: set[str] = set()
    for address, outputs in upstream.items():
        if address.split(".", 1)[0] != "metadata":
            continue
        for row in outputs.get("created") or []:
            if isinstance(row, Mapping) and row.get("kind") == "index":
                names.add(str(row["name"]))
    return names


def _units_to_reread(
    ctx: Context,
    spec: Any,
    units: list[dict[str, Any]] | None,
    metas: Mapping[str, Mapping[str, Any]],
    prior: Mapping[str, Any],
) -> list[Any]:
    """The snapshot shards whose documents this stage may have written.

    From the working state: every unit a worker ever claimed, with its generation's
    snapshot and sampling threshold. Without it (the stage finished and its working
    state is gone) but with outputs: every unit of the snapshot it completed.
    """
    from mactl.backfill.rollback import ReadUnit

    found: list[ReadUnit] = []
    if units:
        for unit in units:
            if unit.get("status") == "pending" and not unit.get("claims") and not unit.get("holder"):
                continue
            meta = metas.get(str(unit.get("gen"))) or {}
            snapshot = str(meta.get("snapshot") or prior.get("snapshotName") or spec.snapshot)
            threshold = (meta.get("thresholds") or {}).get(unit["index"])
            found.append(
                ReadUnit(snapshot, unit["index"], int(unit["shard"]), None if threshold is None else int(threshold))
            )
        return sorted(set(found), key=lambda u: (u.snapshot, u.index, u.shard))
    if not prior.get("snapshotName"):
        return []
    from dataclasses import replace

    from mactl.backfill.prepare import thresholds
    from mactl.backfill.source import open_snapshot_repository
    from mactl.backfill.units import list_units

    snapshot = str(prior["snapshotName"])
    repo = open_snapshot_repository(ctx.inputs.repository)
    listed, _excluded = list_units(repo, snapshot, ctx.inputs.indices)
    limits = thresholds(replace(spec, snapshot=snapshot), repo, listed)
    return [
        ReadUnit(snapshot, u.index, u.shard, None if limits.get(u.index) is None else int(str(limits[u.index])))
        for u in listed
    ]


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
