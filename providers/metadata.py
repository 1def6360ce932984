"""Metadata stage: recreates templates, indices and aliases on the target.

apply = evaluate (read source, select, transform; see `mactl.metadata.evaluate`), check
conflicts with what the target already has (all before writing anything), then create:
indices concurrently, then templates in dependency order. Outputs record exactly what this
stage created, so rollback deletes those and nothing else (per-index rollback), and the
JSON report of every item.

Each item is an instance (`mactl.address.instance_key`: an index by its name, anything
else as `kind:name`). Outputs record each instance's digest (its final body after every
transform); `plan_instances` evaluates the same at plan time, so a transform that
touches one index of twenty changes one digest, and the engine asks apply for only that
instance (`ctx.instances`): apply then deletes what this stage created for it and
creates it again, leaving every other item on the target as it is.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import orjson
from mactl.providers.base import BaseProvider, Fact, PreflightContext, Progress, StageContext

from mactl.address import instance_key
from mactl.cluster import client_for
from mactl.errors import MactlError, ProviderError
from mactl.indexfilter import validate_filters
from mactl.metadata import report as report_mod
from mactl.metadata import target as tgt
from mactl.metadata.evaluate import EvaluatedItem, Evaluation, evaluate, load_source
from mactl.metadata.items import KIND_ORDER, SourceMetadata
from mactl.schema.metadata import MetadataInputs

INDEX_WORKERS = 8
CHECKPOINT_EVERY_S = 2.0
Context = StageContext[MetadataInputs]


def _key(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def item_digest(item: EvaluatedItem) -> str:
    """What an instance is: its kind, target name, source name and final body, hashed."""
    data = {"kind": item.kind, "name": item.name, "source": item.source_name, "body": item.body}
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _evaluated(ev: Evaluation) -> dict[str, Any]:
    """What every run's outputs say of its evaluation: the versions it saw, what it left out."""
    return {
        "sourceVersion": ev.source["version"],
        "sourceDistribution": ev.source["distribution"],
        "targetVersion": ev.target["version"],
        "excluded": [{"kind": e.kind, "name": e.name, "reason": e.reason} for e in ev.excluded],
    }


#: The digest `plan_instances` gives an item that evaluates to a failure.
CANNOT_MIGRATE = "cannot-migrate"

#: Outcomes that finish an item as the inputs ask: created, found identical, or left as the
#: target has it because the config says so (`onExisting: skip`). Planning such an item
#: again would redo nothing, and would make a plan after apply never say "No changes".
_SETTLED_OUTCOMES = frozenset({"created", "existing", "skipped"})


def _instances(ev: Evaluation, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Every item the inputs ask for, with its digest: "complete" when settled, "failed" when
    it failed on the target (`onItemFailure: continue`), so the next plan tries it again."""
    found: dict[str, dict[str, str]] = {}
    for i in ev.items:
        if i.action != "create":
            continue
        outcome = (rows.get(_key(i.kind, i.name)) or {}).get("outcome")
        if outcome in _SETTLED_OUTCOMES:
            found[instance_key(i.kind, i.name)] = {"digest": item_digest(i), "status": "complete"}
        elif outcome == "failed":
            found[instance_key(i.kind, i.name)] = {"digest": item_digest(i), "status": "failed"}
    return found


# A plan evaluates every metadata stage with instances; the seed's shape has thousands of
# them reading one snapshot. Its metadata is read once per plan (a minute at most), not
# once per stage: the snapshot is immutable, and a minute bounds what a long-running
# process (the console) may reuse of pipelines read live beside it.
SOURCE_CACHE_S = 60.0
_sources: dict[bytes, tuple[float, SourceMetadata]] = {}
_sources_lock = threading.Lock()


def _plan_source(inputs: MetadataInputs, upstream: Mapping[str, Mapping[str, Any]]) -> SourceMetadata | None:
    """The snapshot's metadata for `plan_instances` and the preflight, shared between stages and
    both looks of one plan (None for `from: live`)."""
    if inputs.from_ == "live":
        return None
    snap = next((o for a, o in upstream.items() if a.split(".", 1)[0] == "snapshot"), {})
    key = orjson.dumps(
        [inputs.repository.model_dump(mode="json"), inputs.snapshotName, snap.get("name"), snap.get("uuid")],
        option=orjson.OPT_SORT_KEYS,
    )
    with _sources_lock:
        hit = _sources.get(key)
        if hit is not None and time.monotonic() - hit[0] < SOURCE_CACHE_S:
            return hit[1]
        source = load_source(inputs, upstream)
        if len(_sources) >= 8:
            _sources.clear()
        _sources[key] = (time.monotonic(), source)
        return source


def _template_bodies(client: Any, created: list[dict[str, str]]) -> dict[str, Any]:
    bodies: dict[str, Any] = {}
    for row in created:
        if row["kind"] != "index" and (body := tgt.fetch(client, row["kind"], row["name"])) is not None:
            bodies[_key(row["kind"], row["name"])] = body
    return bodies


class MetadataProvider(BaseProvider[MetadataInputs]):
    type = "metadata"
    Inputs = MetadataInputs
    replace_on = frozenset(
        {
            "source",
            "target",
            "repository",
            "snapshotName",
            "indices",
            "from_",
            "transforms",
            "multiTypeMode",
            "templateFilters",
        }
    )
    available = True
    # Each item (index, template, pipeline) is an instance: a change to these fields may
    # touch only some of them (`plan_instances`).
    instance_fields = frozenset({"indices", "transforms", "templateFilters", "templates", "pipelines"})

    def validate(self, inputs: MetadataInputs) -> list[str]:
        problems = validate_filters(inputs.indices)
        problems += [f"templateFilters: {p}" for p in validate_filters(inputs.templateFilters)]
        problems += [f"pipelines.filters: {p}" for p in validate_filters(inputs.pipelines.filters)]
        return problems

    def preflight(self, inputs: MetadataInputs, ctx: PreflightContext) -> list[str]:
        from mactl.providers.preflight import cluster_problem, snapshot_problem

        problems = [cluster_problem(inputs.target, "target", ctx)]
        if inputs.from_ == "live":
            problems.append(cluster_problem(inputs.source, "source", ctx))
        elif not ctx.redoes("snapshot"):
            problems.append(snapshot_problem(inputs.repository, inputs.snapshotName, ctx))
        found = [p for p in problems if p]
        if found or inputs.onItemFailure != "fail":
            return found
        return self._items_that_would_fail(inputs, ctx)

    def _items_that_would_fail(self, inputs: MetadataInputs, ctx: PreflightContext) -> list[str]:
        """The items apply would refuse ("nothing was written"), found by the same evaluation
        apply runs: an index whose default pipeline exists nowhere, a field type the target
        lacks, a transform that raises. Found here, they stop the run before any rollback.

        When this run takes the snapshot again first, the live source stands in for it (the
        snapshot will be taken from it), as `plan --evaluate` does."""
        from mactl.errors import MactlError
        from mactl.metadata.evaluate import evaluate

        if inputs.from_ == "snapshot" and ctx.redoes("snapshot"):
            inputs = inputs.model_copy(update={"from_": "live"})
        try:
            # the snapshot's metadata as `plan_instances` read it for this plan (read once)
            source = _plan_source(inputs, ctx.upstream)
            ev = evaluate(inputs, upstream=ctx.upstream, source=source, base_dir=ctx.config_dir)
        except MactlError as err:
            return [f"cannot work out what it would create: {err.message}"]
        return [f"{i.kind} {i.name} cannot be migrated: {i.reason}" for i in ev.items if i.action == "fail"]

    def plan_instances(self, ctx: Context) -> dict[str, str] | None:
        """key → digest of every item the stage would create now, evaluated as apply would.

        None (known after apply) while the snapshot is not taken yet, for a snapshot in S3
        (a plan must stay quick, and an S3 client waits out an unreachable endpoint), or
        when the source or target cannot be read now."""
        inputs = ctx.inputs
        if inputs.from_ == "snapshot":
            snapshot_stages = [a for a in ctx.upstream if a.split(".", 1)[0] == "snapshot"]
            if any(not ctx.upstream[a] for a in snapshot_stages) or inputs.repository.type != "fs":
                return None
        try:
            client = client_for(inputs.target, retries=0, timeout=10, retry_for=0)
            source = _plan_source(inputs, ctx.upstream)
            ev = evaluate(inputs, upstream=ctx.upstream, target_client=client, source=source, base_dir=ctx.config_dir)
        except (MactlError, OSError):
            return None
        # An item that would fail is still selected: it plans as a change of its definition
        # (and the preflight names why it fails), never as "no longer selected".
        return {
            instance_key(i.kind, i.name): item_digest(i) if i.action == "create" else CANNOT_MIGRATE
            for i in ev.items
            if i.action in ("create", "fail")
        }

    # --- apply --------------------------------------------------------------------------

    def apply(self, ctx: Context) -> dict[str, Any]:
        if ctx.instances is not None:
            return self._apply_instances(ctx, ctx.instances)
        inputs = ctx.inputs
        client = client_for(inputs.target, pool_maxsize=INDEX_WORKERS + 2)
        ev = evaluate(inputs, upstream=ctx.upstream, target_client=client, base_dir=ctx.config_dir)
        ours = self._already_ours(ctx)
        intended = self._intended(ctx)
        rows: dict[str, dict[str, Any]] = {}
        failed_eval = [i for i in ev.items if i.action == "fail"]
        for item in ev.items:
            if item.action != "create":
                outcome = "failed" if item.action == "fail" else "skipped"
                rows[_key(item.kind, item.name)] = report_mod.entry(
                    item.kind,
                    item.name,
                    outcome,
                    reason=item.reason,
                    transforms=item.transforms,
                    source_name=item.source_name,
                )
        for ex in ev.excluded:
            rows[_key(ex.kind, ex.name)] = report_mod.entry(ex.kind, ex.name, "excluded", reason=ex.reason)
        if failed_eval and inputs.onItemFailure == "fail":
            raise ProviderError(
                f"{len(failed_eval)} metadata item(s) cannot be migrated; nothing was written:\n"
                + "\n".join(f"  {i.kind} {i.name}: {i.reason}" for i in failed_eval),
                hint="fix them with a transform, leave them out with `indices`, or set `onItemFailure: continue`",
            )
        todo, recreate = self._resolve_conflicts(client, ev, inputs, ours, rows, intended)
        as_created: dict[str, dict[str, Any]] = {}
        created = self._create_all(ctx, client, todo, recreate, ours, rows, as_created)
        created += self._no_longer_selected_pipelines(ctx, created)
        report = report_mod.build(ev.source, ev.target, ev.origin, self._ordered(rows))
        ctx.log(report_mod.render_text(report, show_transforms=False))
        failures = [r for r in report["items"] if r["outcome"] == "failed"]
        outputs = {
            "created": created,
            **_evaluated(ev),
            "report": report,
            # The index bodies as created (after every transform, without the settings the
            # target refused): the validate stage compares the target against them, and
            # backfill rollback may recreate from them.
            "definitions": {
                i.name: as_created.get(i.name, i.body)
                for i in ev.items
                if i.kind == "index" and i.action == "create" and i.body
            },
            # The templates as the target holds them right after this run: refresh compares
            # them with the target's to notice a template changed outside mactl.
            "templateBodies": _template_bodies(client, created),
            "instances": _instances(ev, rows),
        }
        if failures and inputs.onItemFailure == "fail":
            ctx.checkpoint({"created": created, "intended": self._intents_left(ctx, todo, recreate, created)})
            raise ProviderError(
                f"{len(failures)} metadata item(s) failed on the target ({len(created)} created, recorded for rollback):\n"
                + "\n".join(f"  {r['kind']} {r['name']}: {r.get('reason', '')}" for r in failures)
            )
        return outputs

    def _apply_instances(self, ctx: Context, scope: Mapping[str, str]) -> dict[str, Any]:
        """Redo only the instances in `scope` (key → create / replace / rollback).

        What this stage created for a replaced or rolled-back instance is deleted first;
        then the created and replaced ones are evaluated and created as a full apply would
        (the same conflict rules). Every other item, and its record, stays as it is."""
        inputs = ctx.inputs
        prior = dict(ctx.prior_outputs or {})
        if not scope:
            return prior
        client = client_for(inputs.target, pool_maxsize=INDEX_WORKERS + 2)
        ours = self._created(ctx)
        undo = [r for r in ours if scope.get(instance_key(r["kind"], r["name"])) in ("replace", "rollback")]
        self._delete_items(client, undo)
        undone = {instance_key(r["kind"], r["name"]) for r in undo}
        kept = [r for r in ours if instance_key(r["kind"], r["name"]) not in undone]
        if undo:
            ctx.log("deleted for a redo or rollback: " + ", ".join(f"{r['kind']} {r['name']}" for r in undo))
        ev = evaluate(inputs, upstream=ctx.upstream, target_client=client, base_dir=ctx.config_dir)
        wanted = [i for i in ev.items if scope.get(instance_key(i.kind, i.name)) in ("create", "replace")]
        rows: dict[str, dict[str, Any]] = {}
        for item in wanted:
            if item.action != "create":
                rows[_key(item.kind, item.name)] = report_mod.entry(
                    item.kind,
                    item.name,
                    "failed" if item.action == "fail" else "skipped",
                    reason=item.reason,
                    transforms=item.transforms,
                    source_name=item.source_name,
                )
        failed_eval = [i for i in wanted if i.action == "fail"]
        if failed_eval and inputs.onItemFailure == "fail":
            raise ProviderError(
                f"{len(failed_eval)} metadata item(s) cannot be migrated; nothing was created:\n"
                + "\n".join(f"  {i.kind} {i.name}: {i.reason}" for i in failed_eval),
                hint="fix them with a transform, leave them out with `indices`, or set `onItemFailure: continue`",
            )
        sub = Evaluation(ev.source, ev.target, ev.origin, wanted, [])
        todo, recreate = self._resolve_conflicts(client, sub, inputs, set(), rows)
        as_created: dict[str, dict[str, Any]] = {}
        new = self._create_all(ctx, client, todo, recreate, set(), rows, as_created)
        created = sorted([*kept, *new], key=lambda r: (KIND_ORDER[r["kind"]], r["name"]))
        prior_rows = {
            _key(r["kind"], r["name"]): r
            for r in (prior.get("report") or {}).get("items") or []
            if instance_key(r["kind"], r["name"]) not in scope
        }
        report = report_mod.build(ev.source, ev.target, ev.origin, self._ordered({**prior_rows, **rows}))
        ctx.log(report_mod.render_text(report, show_transforms=False))
        definitions = {k: v for k, v in (prior.get("definitions") or {}).items() if k not in scope}
        definitions.update(
            {
                i.name: as_created.get(i.name, i.body)
                for i in wanted
                if i.kind == "index" and i.body and i.name in {r["name"] for r in new if r["kind"] == "index"}
            }
        )
        bodies = {k: v for k, v in (prior.get("templateBodies") or {}).items() if k not in undone}
        bodies.update(_template_bodies(client, new))
        instances = {k: v for k, v in (prior.get("instances") or {}).items() if k not in scope}
        instances.update(_instances(sub, rows))
        outputs = {
            **prior,
            **_evaluated(ev),
            "created": created,
            "report": report,
            "definitions": definitions,
            "templateBodies": bodies,
            "instances": instances,
        }
        failures = [r for r in rows.values() if r["outcome"] == "failed"]
        if failures and inputs.onItemFailure == "fail":
            ctx.checkpoint({"created": created, "intended": []})
            raise ProviderError(
                f"{len(failures)} metadata item(s) failed on the target:\n"
                + "\n".join(f"  {r['kind']} {r['name']}: {r.get('reason', '')}" for r in failures)
            )
        return outputs

    @staticmethod
    def _delete_items(client: Any, rows: list[dict[str, str]]) -> None:
        """Delete items this stage created: indices, then templates (dependents first), pipelines last."""
        tgt.delete_indices(client, [r["name"] for r in rows if r["kind"] == "index"])
        for row in sorted(
            (r for r in rows if r["kind"] not in ("index", "pipeline")), key=lambda r: -KIND_ORDER[r["kind"]]
        ):
            tgt.delete(client, row["kind"], row["name"])
        for row in rows:
            if row["kind"] == "pipeline":
                tgt.delete(client, "pipeline", row["name"])

    def adopt(self, ctx: Context, import_id: str | None) -> dict[str, Any]:
        """`import`: take over the target's indices, templates, aliases and pipelines that
        are exactly what this stage would create (after every transform), as if it had
        created them. Nothing is written. Any item missing from the target, or there with
        another definition, is a `ProviderError` that lists them (with the differences),
        as are items the stage could not migrate. From then on the stage owns them: a
        rollback deletes them. `import_id` is not needed (the inputs say what to look for).
        """
        inputs = ctx.inputs
        client = client_for(inputs.target, pool_maxsize=INDEX_WORKERS + 2)
        ev = evaluate(inputs, upstream=ctx.upstream, target_client=client, base_dir=ctx.config_dir)
        existing_indices = tgt.existing_index_names(client)
        problems: list[str] = []
        rows: dict[str, dict[str, Any]] = {}
        adopted: list[dict[str, str]] = []
        for item in ev.items:
            if item.action == "fail":
                problems.append(f"  {item.kind} {item.name}: cannot be migrated: {item.reason}")
                continue
            if item.action != "create":
                continue
            actual = (
                None
                if item.kind == "index" and item.name not in existing_indices
                else tgt.fetch(client, item.kind, item.name)
            )
            if actual is None:
                problems.append(f"  {item.kind} {item.name}: not on the target")
                continue
            assert item.body is not None
            diff = tgt.differences(item.kind, item.body, actual)
            if diff:
                problems.append(
                    f"  {item.kind} {item.name}: on the target with another definition:\n"
                    + "\n".join(f"    {line}" for line in diff.splitlines())
                )
                continue
            adopted.append({"kind": item.kind, "name": item.name})
            rows[_key(item.kind, item.name)] = report_mod.entry(
                item.kind,
                item.name,
                "created",
                reason="imported: already on the target, identical; owned by this stage",
                transforms=item.transforms,
                source_name=item.source_name,
            )
        if problems:
            raise ProviderError(
                f"{len(problems)} item(s) on the target are not what the stage would create; nothing was imported:\n"
                + "\n".join(problems),
                hint="create the missing items, or change the stage's `indices`/`transforms` to match the target",
            )
        for ex in ev.excluded:
            rows[_key(ex.kind, ex.name)] = report_mod.entry(ex.kind, ex.name, "excluded", reason=ex.reason)
        report = report_mod.build(ev.source, ev.target, ev.origin, self._ordered(rows))
        return {
            "created": adopted,
            "imported": True,
            **_evaluated(ev),
            "report": report,
            "definitions": {i.name: i.body for i in ev.items if i.kind == "index" and i.action == "create" and i.body},
            "templateBodies": _template_bodies(client, adopted),
            "instances": _instances(ev, rows),
        }

    def _no_longer_selected_pipelines(self, ctx: Context, created: list[dict[str, str]]) -> list[dict[str, str]]:
        """Pipelines an earlier run created that this one no longer selects (`pipelines` changed in place).

        They stay in `created`, so rollback still deletes them: left out, they would stay on
        the target with nobody recording that mactl made them.
        """
        now = {_key(r["kind"], r["name"]) for r in created}
        kept = [
            {"kind": "pipeline", "name": row["name"]}
            for row in self._created(ctx)
            if row["kind"] == "pipeline" and _key("pipeline", row["name"]) not in now
        ]
        if kept:
            names = ", ".join(r["name"] for r in kept)
            ctx.log(
                f"kept ingest pipeline(s) {names}: created by an earlier run, no longer selected; rollback deletes them"
            )
        return kept

    def _already_ours(self, ctx: Context) -> set[str]:
        """Items an earlier (interrupted or updated) run of this stage created."""
        found: set[str] = set()
        for source in (ctx.prior_outputs or {}, ctx.checkpoint_data or {}):
            for row in source.get("created") or []:
                found.add(_key(row["kind"], row["name"]))
        return found

    def _intended(self, ctx: Context) -> dict[str, bool]:
        """Items an interrupted run recorded it was about to create (key → was a recreate)."""
        return {
            _key(row["kind"], row["name"]): bool(row.get("recreate"))
            for row in (ctx.checkpoint_data or {}).get("intended") or []
        }

    @staticmethod
    def _intents_left(
        ctx: Context, todo: list[EvaluatedItem], recreate: set[str], created: list[dict[str, str]]
    ) -> list[dict[str, Any]]:
        """The intents not yet confirmed as created (kept with the checkpoint for rollback)."""
        done = {_key(r["kind"], r["name"]) for r in created}
        rows: dict[str, dict[str, Any]] = {
            _key(i.kind, i.name): {"kind": i.kind, "name": i.name, "recreate": _key(i.kind, i.name) in recreate}
            for i in todo
            if _key(i.kind, i.name) not in done
        }
        for row in (ctx.checkpoint_data or {}).get("intended") or []:
            key = _key(row["kind"], row["name"])
            if key not in done and key not in rows:
                rows[key] = dict(row)
        return list(rows.values())

    def _resolve_conflicts(
        self,
        client: Any,
        ev: Evaluation,
        inputs: MetadataInputs,
        ours: set[str],
        rows: dict[str, dict[str, Any]],
        intended: dict[str, bool] | None = None,
    ) -> tuple[list[EvaluatedItem], set[str]]:
        """Split items into those to create and those the target already has; fail early on conflicts."""
        intended = intended or {}
        existing_indices = tgt.existing_index_names(client)
        todo: list[EvaluatedItem] = []
        recreate: set[str] = set()
        conflicts: list[str] = []
        for item in ev.items:
            if item.action != "create":
                continue
            key = _key(item.kind, item.name)
            if item.kind == "index" and item.name not in existing_indices:
                todo.append(item)
                continue
            actual = tgt.fetch(client, item.kind, item.name)
            if actual is None:
                todo.append(item)
                continue
            assert item.body is not None
            diff = tgt.differences(item.kind, item.body, actual)
            if key in intended and key not in ours and (not intended[key] or not diff):
                # An interrupted run recorded it was about to create this item, and the item
                # was absent then (or, for a recreate, now matches what mactl creates): the
                # create went through before the kill. It is this stage's.
                ours.add(key)
            if key in ours and diff and item.kind != "index":
                # Ours, changed on the target since: put back what this stage creates.
                recreate.add(key)
                todo.append(item)
                continue
            if key in ours:
                rows[key] = report_mod.entry(
                    item.kind,
                    item.name,
                    "created",
                    reason="created by an earlier run of this stage",
                    transforms=item.transforms,
                    source_name=item.source_name,
                )
                continue
            if not diff:
                rows[key] = report_mod.entry(
                    item.kind,
                    item.name,
                    "existing",
                    reason="already on the target, identical; left alone",
                    transforms=item.transforms,
                    source_name=item.source_name,
                )
                continue
            if inputs.onExisting == "skip":
                rows[key] = report_mod.entry(
                    item.kind,
                    item.name,
                    "skipped",
                    reason=f"already on the target and differs (onExisting: skip):\n{diff}",
                    transforms=item.transforms,
                    source_name=item.source_name,
                )
            elif inputs.onExisting == "recreate":
                recreate.add(key)
                todo.append(item)
            else:
                conflicts.append(
                    f"  {item.kind} {item.name} already exists on the target and differs:\n"
                    + "\n".join(f"    {line}" for line in diff.splitlines())
                )
        if conflicts:
            raise ProviderError(
                f"{len(conflicts)} item(s) already exist on the target with other definitions; nothing was written:\n"
                + "\n".join(conflicts),
                hint="set `onExisting: skip` to keep the target's, or `onExisting: recreate` to replace them",
            )
        return todo, recreate

    def _create_all(
        self,
        ctx: Context,
        client: Any,
        todo: list[EvaluatedItem],
        recreate: set[str],
        ours: set[str],
        rows: dict[str, dict[str, Any]],
        as_created: dict[str, dict[str, Any]],
    ) -> list[dict[str, str]]:
        """Create `todo`; an index whose body the target made mactl change (a refused setting
        dropped) goes into `as_created` as created."""
        created: list[dict[str, str]] = [
            {"kind": r["kind"], "name": r["name"]} for k, r in rows.items() if k in ours and r["outcome"] == "created"
        ]
        total = len(todo)
        done = 0
        # Every item is in the recorded intent list BEFORE its create request is sent (one
        # state write for the whole batch): a kill at any point after leaves a record that
        # a rerun adopts and a rollback deletes, however short the stage was.
        intents = self._intents_left(ctx, todo, recreate, created)
        if todo:
            ctx.checkpoint({"created": list(created), "intended": intents})
        last_checkpoint = time.monotonic()

        def one(item: EvaluatedItem) -> tuple[EvaluatedItem, list[str] | str]:
            try:
                if _key(item.kind, item.name) in recreate:
                    tgt.delete(client, item.kind, item.name)
                assert item.body is not None
                body, notes = tgt.create_as(client, item.kind, item.name, item.body)
                if item.kind == "index" and body is not item.body:
                    as_created[item.name] = body
                return item, notes
            except tgt.CreateFailed as exc:
                return item, exc.reason

        def record(item: EvaluatedItem, result: list[str] | str) -> None:
            nonlocal done, last_checkpoint
            done += 1
            key = _key(item.kind, item.name)
            if isinstance(result, str):
                rows[key] = report_mod.entry(
                    item.kind,
                    item.name,
                    "failed",
                    reason=result,
                    transforms=item.transforms,
                    source_name=item.source_name,
                )
            else:
                reason = (
                    (
                        "put back: changed on the target after this stage created it"
                        if key in ours
                        else "recreated (onExisting: recreate)"
                    )
                    if key in recreate
                    else ""
                )
                rows[key] = report_mod.entry(
                    item.kind,
                    item.name,
                    "created",
                    reason=reason,
                    transforms=item.transforms + result,
                    source_name=item.source_name,
                )
                created.append({"kind": item.kind, "name": item.name})
            ctx.progress(Progress(done=done, total=total, unit="items", message=f"{item.kind} {item.name}"))
            if time.monotonic() - last_checkpoint >= CHECKPOINT_EVERY_S:
                ctx.checkpoint({"created": list(created), "intended": intents})
                last_checkpoint = time.monotonic()

        # Indices first, templates after: a template created first would also apply to the
        # migrated indices (adding its aliases and settings a second time, under new names
        # when a transform renamed them). Each migrated index already carries what its
        # templates gave it on the source.
        # Ingest pipelines before both: the indices and templates name them, and a write
        # naming a missing pipeline is rejected.
        for item in sorted((i for i in todo if i.kind == "pipeline"), key=lambda i: i.name):
            record(*one(item))
        templates = [i for i in todo if i.kind not in ("index", "pipeline")]
        indices = [i for i in todo if i.kind == "index"]
        if indices:
            with ThreadPoolExecutor(max_workers=INDEX_WORKERS, thread_name_prefix="mactl-meta") as pool:
                futures = [pool.submit(one, item) for item in indices]
                for future in as_completed(futures):
                    record(*future.result())
                    if ctx.cancelled.is_set():
                        for f in futures:
                            f.cancel()
        for item in sorted(templates, key=lambda i: (KIND_ORDER[i.kind], i.name)):
            record(*one(item))
        created.sort(key=lambda r: (KIND_ORDER[r["kind"]], r["name"]))
        return created

    @staticmethod
    def _ordered(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        order = {o: i for i, o in enumerate(report_mod.OUTCOMES)}
        return sorted(rows.values(), key=lambda r: (KIND_ORDER[r["kind"]], r["name"], order.get(r["outcome"], 9)))

    # --- rollback / read ------------------------------------------------------------------

    def _created(self, ctx: Context) -> list[dict[str, str]]:
        seen: dict[str, dict[str, str]] = {}
        for source in (ctx.prior_outputs or {}, ctx.checkpoint_data or {}):
            for row in source.get("created") or []:
                seen[_key(row["kind"], row["name"])] = {"kind": row["kind"], "name": row["name"]}
        return list(seen.values())

    def rollback(self, ctx: Context) -> None:
        """Delete exactly what this stage created: indices first, then templates in reverse order.

        "Created" is what the outputs or the checkpoint confirm, plus what an interrupted
        run recorded it was about to create and that exists now (the create went through
        before the kill). An intended recreate that was never confirmed is left alone: the
        item there may still be the one the target had before.
        """
        inputs = ctx.inputs
        created = self._created(ctx)
        confirmed = {_key(r["kind"], r["name"]) for r in created}
        for row in (ctx.checkpoint_data or {}).get("intended") or []:
            key = _key(row["kind"], row["name"])
            if key in confirmed:
                continue
            if row.get("recreate"):
                ctx.log(f"{row['kind']} {row['name']}: its recreate was never confirmed; left alone")
                continue
            created.append({"kind": row["kind"], "name": row["name"]})
            confirmed.add(key)
        if not created:
            return
        client = client_for(inputs.target)
        indices = [r["name"] for r in created if r["kind"] == "index"]
        tgt.delete_indices(client, indices)
        templates = sorted(
            (r for r in created if r["kind"] not in ("index", "pipeline")), key=lambda r: -KIND_ORDER[r["kind"]]
        )
        for row in templates:
            tgt.delete(client, row["kind"], row["name"])
        # Pipelines last: only the ones this stage created (`created`), never the target's own.
        pipelines = [r["name"] for r in created if r["kind"] == "pipeline"]
        for name in pipelines:
            tgt.delete(client, "pipeline", name)
        ctx.log(
            f"rolled back {len(indices)} indices and {len(templates)} templates"
            + (f" and {len(pipelines)} ingest pipelines" if pipelines else "")
        )

    def read(self, ctx: Context) -> dict[str, Any] | None:
        """The outputs with `onTarget`: what became of each item this stage created.

        An index is `present` or `missing on the target`; a template is `as created`,
        `changed on the target` (compared with its body as fetched right after creating
        it, when the outputs recorded one) or `missing on the target`.
        """
        prior = ctx.prior_outputs
        if prior is None:
            return None
        inputs = ctx.inputs
        client = client_for(inputs.target)
        present_indices = tgt.existing_index_names(client)
        bodies = prior.get("templateBodies") or {}
        observed: dict[str, str] = {}
        for row in prior.get("created") or []:
            kind, name = row["kind"], row["name"]
            if kind == "index":
                observed[_fact(kind, name)] = PRESENT if name in present_indices else MISSING
                continue
            actual = tgt.fetch(client, kind, name)
            recorded = bodies.get(_key(kind, name))
            if actual is None:
                observed[_fact(kind, name)] = MISSING
            elif isinstance(recorded, dict) and tgt.differences(kind, recorded, actual):
                observed[_fact(kind, name)] = CHANGED
            else:
                observed[_fact(kind, name)] = AS_CREATED
        return {**prior, "onTarget": observed}

    def facts(self, outputs: Mapping[str, Any]) -> dict[str, Fact]:
        """One fact per item created (`index logs`, `index_template logs`). A missing index
        means the documents in it are gone too: the stage is redone, and so is what filled
        it. A changed or missing template is repaired by applying the stage again."""
        observed = outputs.get("onTarget") or {}
        found: dict[str, Fact] = {}
        for row in outputs.get("created") or []:
            name = _fact(row["kind"], row["name"])
            if row["kind"] == "index":
                found[name] = Fact(observed.get(name, PRESENT), redo=True)
            else:
                found[name] = Fact(observed.get(name, AS_CREATED))
        return found


PRESENT, AS_CREATED, MISSING, CHANGED = "present", "as created", "missing on the target", "changed on the target"


def _fact(kind: str, name: str) -> str:
    return f"{kind} {name}"
