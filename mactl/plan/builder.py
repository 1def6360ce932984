"""Build a `Plan`: diff the desired stages against the state, per stage, then order it.

Rules (the issue's section 4 and the seed's invalidation):
- not in the state → create; left the config → roll back; failed or interrupted
  (tainted) → replace, or resume from its checkpoint when its inputs did not change;
- inputs changed → update in place, or replace when a changed top-level field is in the
  provider's `replace_on`; `lifecycle.ignoreChanges` paths are left out of the diff;
- a replaced stage replaces every descendant in the state ("upstream ADDR replaced"),
  unless `-keep-downstream ADDR`;
- `-target` keeps targets plus their dependencies, `-exclude` drops stages plus their
  dependents, `-replace` forces a replacement;
- a stage with instances (a metadata stage's items, a backfill's indices; see
  `mactl.plan.instances`) whose inputs changed only in its `instance_fields`, or whose
  source holds other items now, is an update of only the instances that change, when
  refresh can compute them; an instance address (`ADDR["key"]`, `mactl.address`) in
  `-target`, `-exclude` or `-replace` narrows that stage (and the same key in the stages
  around it) to those instances;
- refresh asks each provider to `read` what it made and compares the provider's `facts`
  of it with the recorded ones (`mactl.plan.drift`); a difference is "changed outside
  mactl": an update that repairs it, or, when the stage's result is gone, a replacement
  that redoes it and everything built on it. With `refresh=False` no provider is called,
  so nothing touches the network.
This module reads the state document it is given and never writes anything.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import orjson
from pydantic import BaseModel, TypeAdapter

from mactl.address import Address, instance_address, parse_address
from mactl.config.bulk import paused_gc
from mactl.config.issues import did_you_mean
from mactl.credentials import missing_clusters, without_credentials
from mactl.errors import MactlError, PlanError
from mactl.graph.blocks import StateBlocks
from mactl.graph.expand import StageGraph
from mactl.graph.stage import Stage
from mactl.masking import (
    SENSITIVE,
    inputs_digest,
    mask_inputs,
    mask_values,
    path_is_sensitive,
    same_digest,
    shared_digests,
)
from mactl.plan.definition import GATED_ACTIONS, AttributeChange, Change, InstanceChange, Plan
from mactl.plan.drift import Finding, compare
from mactl.plan.instances import (
    InstanceFilters,
    changed_keys,
    diff_instances,
    recorded_instances,
    rollback_instances,
    summary,
)
from mactl.plan.value_diff import ValueDiffer
from mactl.providers import registry
from mactl.providers.base import StageContext
from mactl.retrying import waiting_at_most
from mactl.state.document import COMPLETE_STATUSES, HistoryEntry, StageRecord, StateDocument
from mactl.state.masking import shared_values_masked
from mactl.state.workdir import Workdir

TAINTED_STATUSES = frozenset({"failed", "tainted", "running"})
#: How long a refresh read waits out a cluster that does not answer (apply waits longer).
REFRESH_RETRY_FOR_S = 10.0


@dataclass
class PlanOptions:
    """What the user asked for on the command line."""

    targets: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    keep_downstream: list[str] = field(default_factory=list)
    refresh: bool = True
    refresh_only: bool = False
    destroy: bool = False
    parallelism: int = 4
    # `mactl import ADDR [ID]`: imports on top of the config's `import` blocks (address → id).
    imports: dict[str, str | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "excludes": self.excludes,
            "replaces": self.replaces,
            "keep_downstream": self.keep_downstream,
            "refresh": self.refresh,
            "refresh_only": self.refresh_only,
            "destroy": self.destroy,
        }


@dataclass
class Desired:
    """One desired stage with its unmasked digest and masked inputs, computed once."""

    stage: Stage
    digest: str
    masked: dict[str, Any]
    masked_digest: str


def prepare(graph: StageGraph, sensitive_values: Collection[str]) -> dict[str, Desired]:
    """Digest and mask every desired stage (shared by the planner and the plan-file check)."""
    out: dict[str, Desired] = {}
    secrets = [s for s in sensitive_values if s]
    # Stage inputs share big values (filters): mask and hash each once. No cyclic GC: many
    # small, acyclic values that all stay alive (see `mactl.config.bulk`).
    with paused_gc(), shared_values_masked(), shared_digests():
        for address, stage in graph.stages.items():
            # What the state will record: clusters by name and endpoint, never their credentials,
            # so a rotated password is not a change (it is read from the config at run time).
            recorded = without_credentials(stage.inputs)
            digest = inputs_digest(recorded)
            # Always masked: a URL's userinfo or a credential-named key needs no declaration.
            masked = mask_inputs(recorded, stage.sensitive_paths, secrets)
            masked_digest = digest if masked is recorded else inputs_digest(masked)
            out[address] = Desired(stage, digest, masked, masked_digest)
    return out


def config_digest(desired: Mapping[str, Desired]) -> str:
    """A hash of every stage's address and masked inputs: what a plan file was made for."""
    h = hashlib.sha256()
    for address in sorted(desired):
        h.update(address.encode())
        h.update(desired[address].masked_digest.encode())
    return h.hexdigest()


def _match(pattern: str, candidates: Iterable[str], flag: str) -> set[str]:
    found = {a for a in candidates if a == pattern or ("*" in pattern and fnmatch.fnmatchcase(a, pattern))}
    if not found:
        known = sorted(candidates)
        raise PlanError(f"{flag} {pattern}: no stage has that address{did_you_mean(pattern, known)}")
    return found


def _top_field_names(stage_type: str) -> dict[str, str]:
    """JSON key (alias) → model field name, so `from` matches a `replace_on` of `from_`."""
    model = registry.get_provider(stage_type).Inputs
    return {(info.alias or name): name for name, info in model.model_fields.items()}


def attribute_diff(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    replace_on: Collection[str],
    names: Mapping[str, str],
    differ: ValueDiffer | None = None,
) -> list[AttributeChange]:
    """Changed fields between two masked input dicts, in path order (DeepDiff's answer,
    found by `ValueDiffer` without walking what is equal; one differ serves a whole plan)."""
    found: list[AttributeChange] = []
    for parts, old, new in (differ or ValueDiffer()).changed_levels(dict(before), dict(after)):
        top = names.get(str(parts[0]), str(parts[0]))
        found.append(
            AttributeChange(
                path=".".join(str(p) for p in parts),
                before=old,
                after=new,
                forces_replacement=top in replace_on,
                sensitive=old == SENSITIVE or new == SENSITIVE,
            )
        )
    found.sort(key=lambda a: a.path)
    return found


def _code_changes(attrs: Iterable[AttributeChange], inputs: Mapping[str, Any]) -> dict[str, str]:
    """Changed transform code (`<list>.<i>.codeDigest`) → "transforms[0] code changed (mymod.py)"."""
    from mactl.transforms import code_label

    found: dict[str, str] = {}
    for a in attrs:
        parts = a.path.split(".")
        if len(parts) != 3 or parts[2] != "codeDigest" or not parts[1].isdigit():
            continue
        specs = inputs.get(parts[0])
        index = int(parts[1])
        spec = specs[index] if isinstance(specs, list) and index < len(specs) else None
        label = code_label(spec) if isinstance(spec, Mapping) else "its file"
        found[a.path] = f"{parts[0]}[{index}] code changed ({label})"
    return found


def _holds_masked(inputs: Mapping[str, Any]) -> bool:
    """Whether a masked value is anywhere in `inputs` (recorded inputs, as plain JSON)."""
    return SENSITIVE.encode() in orjson.dumps(inputs)


def _ignored(path: str, ignore: Collection[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in ignore)


class Planner:
    def __init__(
        self,
        graph: StageGraph,
        doc: StateDocument | None,
        options: PlanOptions,
        *,
        sensitive_values: Collection[str] = (),
        workdir: Path | None = None,
        config_dir: Path | None = None,
        desired: dict[str, Desired] | None = None,
    ) -> None:
        self.graph = graph
        self.doc = doc or StateDocument()
        # The config's `moved` blocks apply first: from here on, records live at their new addresses.
        self.moves = graph.blocks.moves(self.doc.stages)
        self.records: dict[str, StageRecord] = (
            moved_records(self.doc.stages, self.moves, graph.blocks) if self.moves else self.doc.stages
        )
        self.moved_from = {new: old for old, new in self.moves.items()}
        self.imports = {**graph.blocks.import_ids(), **options.imports}
        self.options = options
        self.secrets = [s for s in sensitive_values if s]
        self.workdir = workdir or Path(".mactl/work")
        self.config_dir = (config_dir or Path.cwd()).absolute()
        self.desired = desired if desired is not None else prepare(graph, self.secrets)
        self.changes: dict[str, Change] = {}
        self.warnings: list[str] = []
        self._names: dict[str, dict[str, str]] = {}
        self.filters: dict[str, InstanceFilters] = {}  # what instance addresses said, per stage
        self._typed: dict[str, BaseModel] = {}  # stage inputs as their Inputs models (`_typed_inputs`)
        self.differ = ValueDiffer()  # one per plan: stages share values, diffed once

    # -- selection ------------------------------------------------------------------

    def _type_of(self, address: str) -> str | None:
        stage = self.graph.stages.get(address)
        if stage is not None:
            return stage.type
        record = self.records.get(address)
        return record.type if record is not None else None

    def _has_instances(self, address: str) -> bool:
        stage_type = self._type_of(address)
        return stage_type is not None and bool(registry.get_provider(stage_type).instance_fields)

    def _filter(self, address: str) -> InstanceFilters:
        return self.filters.setdefault(address, InstanceFilters())

    def _instance_stages(self, flag: str, addr: Address, every: Iterable[str]) -> set[str]:
        found = _match(addr.stage, every, flag)
        if addr.is_instance and not any(self._has_instances(a) for a in found):
            raise PlanError(
                f"{flag} {addr}: {addr.stage} has no instances",
                hint="metadata and backfill stages have instances, one per index, template or pipeline",
            )
        return found

    def _selection(self) -> tuple[set[str], set[str]]:
        """(selected addresses, excluded addresses) from -target/-exclude."""
        every = set(self.graph.stages) | set(self.records)
        selected = set(every)
        o = self.options
        if o.targets:
            selected = set()
            narrowed: dict[str, list[Address]] = {}
            whole: set[str] = set()
            for pattern in o.targets:
                addr = parse_address(pattern, flag="-target")
                for address in self._instance_stages("-target", addr, every):
                    related = {address}
                    if o.destroy:
                        related |= self._state_descendants(address)
                    elif address in self.graph.stages:
                        related |= self.graph.ancestors(address)
                    selected |= related
                    for a in related:
                        if addr.is_instance and self._has_instances(a):
                            narrowed.setdefault(a, []).append(Address(a, addr.key))
                        else:
                            whole.add(a)
            for a, addrs in narrowed.items():
                if a not in whole:
                    self._filter(a).targets = addrs
        excluded: set[str] = set()
        for pattern in o.excludes:
            addr = parse_address(pattern, flag="-exclude")
            for address in self._instance_stages("-exclude", addr, every):
                below = {address} | self._state_descendants(address)
                if address in self.graph.stages:
                    below |= self.graph.descendants(address)
                if addr.is_instance:
                    # The instance and the instances of the same key built on it.
                    for a in below:
                        if self._has_instances(a):
                            self._filter(a).excludes.append(Address(a, addr.key))
                    continue
                excluded |= below
        return selected - excluded, excluded

    def _state_dag(self) -> nx.DiGraph:
        if not hasattr(self, "_sdag"):
            dag = nx.DiGraph()
            dag.add_nodes_from(self.records)
            for address, record in self.records.items():
                dag.add_edges_from((dep, address) for dep in record.depends_on if dep in self.records)
            self._sdag = dag
        return self._sdag

    def _state_descendants(self, address: str) -> set[str]:
        dag = self._state_dag()
        return set(nx.descendants(dag, address)) if address in dag else set()

    # -- per-stage diff -------------------------------------------------------------

    def _names_for(self, stage_type: str) -> dict[str, str]:
        if stage_type not in self._names:
            self._names[stage_type] = _top_field_names(stage_type)
        return self._names[stage_type]

    def _change(self, d: Desired, record: StageRecord | None) -> Change:
        stage = d.stage
        change = functools.partial(
            Change,
            address=stage.address,
            type=stage.type,
            after=d.masked,
            approval_required=stage.approval_required or stage.type == "manual",
            manual_rollback=stage.lifecycle.rollback == "manual",
            prevent_rollback=stage.lifecycle.prevent_rollback,
            depends_on=stage.depends_on,
            description=stage.description,
            moved_from=self.moved_from.get(stage.address),
        )
        if record is None:
            if stage.address in self.imports:
                return change(
                    action="import",
                    reason="import: adopts what already exists instead of creating it",
                    import_id=self.imports[stage.address],
                )
            return change(action="create", reason="not in the state yet")
        before = record.inputs or None
        if record.status == "left_manual":
            return change(
                action="create",
                reason="its last rollback was left to a person; it is created again",
            )
        if record.status == "awaiting_approval" and not record.inputs_digest:
            reason = f"approved by {record.approved_by}" if record.approved_by else "waiting for approval"
            return change(action="create", reason=reason)
        provider = registry.get_provider(stage.type)
        attrs = self._attributes(d, record, provider.replace_on)
        if stage.address in self.options.replaces:
            return change(
                action="replace",
                reason="replacement requested with -replace",
                before=before,
                attributes=tuple(attrs),
            )
        if record.status == "rolling_back":
            # Never resumed from its checkpoint: what the stage made may be half undone.
            return change(
                action="replace",
                reason="its rollback was interrupted (a killed destroy?): the rollback finishes, then it is redone",
                before=before,
                attributes=tuple(attrs),
            )
        if record.status in TAINTED_STATUSES:
            why = (
                "interrupted while running"
                if record.status == "running"
                else (
                    f"the last run failed: {record.last_error}"
                    if record.status == "failed" and record.last_error
                    else f"status {record.status}"
                )
            )
            if record.checkpoint and self._unchanged(d, record):
                return change(
                    action="update",
                    reason=f"tainted ({why}); resumes from its checkpoint",
                    before=before,
                    resume=True,
                )
            return change(action="replace", reason=f"tainted ({why})", before=before, attributes=tuple(attrs))
        if attrs:
            code = _code_changes(attrs, d.masked)
            forcing = [a.path for a in attrs if a.forces_replacement and a.path not in code]
            if forcing or any(a.forces_replacement for a in attrs if a.path in code):
                parts = [*code.values(), *([f"{', '.join(forcing)} forces replacement"] if forcing else [])]
                return change(
                    action="replace",
                    reason="inputs changed; " + "; ".join(parts) + ("" if forcing else " (forces replacement)"),
                    before=before,
                    attributes=tuple(attrs),
                )
            reason = "inputs changed" + "".join(f"; {text}" for text in code.values())
            return change(action="update", reason=reason, before=before, attributes=tuple(attrs))
        if record.status == "awaiting_approval":
            reason = f"approved by {record.approved_by}" if record.approved_by else "waiting for approval"
            return change(action="update", reason=reason, before=before)
        return change(action="noop", reason="unchanged", before=before)

    def _unchanged(self, d: Desired, record: StageRecord) -> bool:
        """Whether the record's inputs digest is the desired inputs' (a legacy one included)."""
        return record.inputs_digest == d.digest or same_digest(
            record.inputs_digest, d.digest, without_credentials(d.stage.inputs)
        )

    def _attributes(self, d: Desired, record: StageRecord, replace_on: Collection[str]) -> list[AttributeChange]:
        if self._unchanged(d, record):
            return []
        stage = d.stage
        names = self._names_for(stage.type)
        attrs = attribute_diff(record.inputs, d.masked, replace_on, names, self.differ)
        if not attrs and not _holds_masked(record.inputs):
            # Nothing masked was recorded, so nothing hidden can differ: the digest was
            # made from another spelling of the same inputs (a rename, a migrated state).
            return []
        if not attrs:
            # Only a masked value changed (a rotated password): show its path, masked.
            attrs = [
                AttributeChange(
                    p, SENSITIVE, SENSITIVE, names.get(p.split(".")[0], p.split(".")[0]) in replace_on, True
                )
                for p in sorted(stage.sensitive_paths)
            ] or [AttributeChange("(sensitive)", SENSITIVE, SENSITIVE, False, True)]
        ignore = stage.lifecycle.ignore_changes
        if ignore:
            attrs = [a for a in attrs if not _ignored(a.path, ignore)]
        for i, a in enumerate(attrs):
            if path_is_sensitive(a.path, stage.sensitive_paths) and not a.sensitive:
                attrs[i] = AttributeChange(a.path, SENSITIVE, SENSITIVE, a.forces_replacement, True)
        return attrs

    # -- refresh ----------------------------------------------------------------------

    def _refresh(self, candidates: list[str]) -> dict[str, tuple[dict[str, Any] | None, list[Finding]]]:
        """address → (outputs read, the facts that differ; see `mactl.plan.drift`).
        Calls providers in parallel. Outputs None: the stage's result is gone as a whole."""

        def one(address: str) -> tuple[str, dict[str, Any] | None, list[Finding]]:
            stage = self.graph.stages[address]
            record = self.records[address]
            provider = registry.get_provider(stage.type)
            ctx = StageContext(
                address=address,
                type=stage.type,
                inputs=provider.Inputs.model_validate(stage.inputs),
                prior_outputs=record.outputs,
                upstream={dep: self.records[dep].outputs for dep in stage.depends_on if dep in self.records},
                checkpoint_data=record.checkpoint,
                workdir=Workdir(self.workdir).stage_dir(address),
                config_dir=self.config_dir,
            )
            with waiting_at_most(REFRESH_RETRY_FOR_S):
                found = provider.read(ctx)
            if found is None:
                return address, None, []
            masked = mask_values(found, self.secrets)
            return address, masked, compare(provider.facts(record.outputs), provider.facts(masked))

        if not candidates:
            return {}
        with ThreadPoolExecutor(max_workers=max(1, min(8, self.options.parallelism * 2))) as pool:
            return {a: (out, findings) for a, out, findings in pool.map(one, candidates)}

    # -- the whole plan ---------------------------------------------------------------

    def build(self) -> Plan:
        with paused_gc():
            return self._build()

    def _build(self) -> Plan:
        o = self.options
        if o.destroy and o.refresh_only:
            raise PlanError("-refresh-only cannot be combined with destroy")
        for text in o.replaces:
            addr = parse_address(text, flag="-replace")
            address = addr.stage
            if address not in self.graph.stages:
                raise PlanError(
                    f"-replace {text}: no stage has that address in the config{did_you_mean(address, list(self.graph.stages))}"
                )
            if addr.is_instance:
                if not self._has_instances(address):
                    raise PlanError(f"-replace {text}: {address} has no instances")
                self._filter(address).replaces.append(addr)
                continue
            if address not in self.records:
                self.warnings.append(f"-replace {address}: the stage is not in the state yet, so it is simply created")
        for address in o.imports:
            if address not in self.graph.stages:
                raise PlanError(
                    f"import {address}: no stage has that address in the config{did_you_mean(address, list(self.graph.stages))}"
                )
        for address in o.keep_downstream:
            if address not in self.graph.stages:
                raise PlanError(
                    f"-keep-downstream {address}: no stage has that address{did_you_mean(address, list(self.graph.stages))}"
                )
        selected, excluded = self._selection()
        unfinished = unfinished_destroy(self.doc)
        if unfinished is not None and self.records:
            interrupted = sorted(a for a, r in self.records.items() if r.status == "rolling_back")
            self.warnings.append(
                f"a destroy did not finish (started {unfinished.at} by {unfinished.who}: {unfinished.detail}); "
                f"the state still holds {len(self.records)} stage(s)"
                + (
                    f", {len(interrupted)} with an interrupted rollback ({', '.join(interrupted[:5])}"
                    + (", …" if len(interrupted) > 5 else "")
                    + ")"
                    if interrupted
                    else ""
                )
                + ". Run `mactl destroy` again to finish it (`mactl apply` instead redoes what it undid)"
            )

        if o.destroy:
            changes = self._destroy(selected)
        else:
            changes = self._normal(selected, excluded)
            self._check_imports(changes)
        self._check_prevent_rollback(changes)
        self._check_clusters(changes)
        self._check_validate(changes)
        if not o.destroy:
            self._provider_notes(changes)
        ordered = self._order({a: walk_decisions(c, self.records.get(a)) for a, c in changes.items()})
        return Plan(
            changes=ordered,
            lineage=self.doc.lineage if self.doc.serial or self.doc.stages else None,
            serial=self.doc.serial,
            config_digest=config_digest(self.desired),
            mode="destroy" if o.destroy else ("refresh-only" if o.refresh_only else "normal"),
            refreshed=o.refresh,
            options=o.as_dict(),
            warnings=self.warnings,
            stage_count=len(self.graph.stages),
            moves=dict(self.moves),
        )

    def _check_imports(self, changes: Mapping[str, Change]) -> None:
        """Ask each stage to be imported whether what exists is what it would create (its
        provider's `adopt`, which writes nothing), in dependency order, an import's result
        serving as upstream for the next: a mismatch fails the plan, saying what differs.
        A stage whose dependencies are not complete yet is checked when apply adopts it."""
        from mactl.errors import MactlError

        pending = [a for a in self.graph.topological() if a in changes and changes[a].action == "import"]
        if not pending:
            return
        if not self.options.refresh:
            self.warnings.append(
                f"-refresh=false: {len(pending)} import(s) not checked against the clusters; apply checks them"
            )
            return
        adopted: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        for address in pending:
            stage = self.graph.stages[address]
            upstream: dict[str, dict[str, Any]] = {}
            ready = True
            for dep in stage.depends_on:
                record = self.records.get(dep)
                if dep in adopted:
                    upstream[dep] = adopted[dep]
                elif (
                    record is not None
                    and record.status in COMPLETE_STATUSES
                    and (dep not in changes or changes[dep].action in ("noop", "update"))
                ):
                    upstream[dep] = record.outputs
                else:
                    ready = False
            if not ready:
                self.warnings.append(f"{address}: import checked at apply (what it builds on is not complete yet)")
                continue
            provider = registry.get_provider(stage.type)
            adopt = getattr(provider, "adopt", None)
            if adopt is None:
                raise PlanError(f"import {address}: a {stage.type} stage cannot be imported")
            ctx = StageContext(
                address=address,
                type=stage.type,
                inputs=provider.Inputs.model_validate(stage.inputs),
                prior_outputs=None,
                upstream=upstream,
                checkpoint_data=None,
                workdir=Workdir(self.workdir).stage_dir(address),
                config_dir=self.config_dir,
            )
            try:
                adopted[address] = adopt(ctx, changes[address].import_id)
            except MactlError as err:
                problems.append(f"  {address}: {err.message}")
        if problems:
            raise PlanError(
                "import refused: what exists is not what the stage would create:\n" + "\n".join(problems),
                hint="make the config match what exists, or drop the import and let mactl create it",
            )

    def _typed_inputs(self, stage: Stage) -> BaseModel:
        """`stage`'s inputs as its provider's `Inputs` model: the one `expand` validated,
        else validated once per plan (a clone's copied from its twin's: see `_clone_inputs`)."""
        found = self.graph.typed_inputs.get(stage.address)
        if found is None:
            found = self._typed.get(stage.address)
        if found is None:
            twin = self.graph.stages.get(stage.clone_of) if stage.clone_of else None
            found = _clone_inputs(stage, self._typed_inputs(twin) if twin is not None else None)
            if found is None:
                found = registry.get_provider(stage.type).Inputs.model_validate(stage.inputs)
            self._typed[stage.address] = found
        return found

    def _provider_notes(self, changes: Mapping[str, Change]) -> None:
        """What a provider can tell about a stage that will run, before it runs (a backfill:
        the indices its snapshot holds that cannot be backfilled). Best effort: a provider
        without `plan_notes`, or one that cannot look (the snapshot is not taken yet), adds
        nothing, and apply checks again before any document is written."""
        for address, change in changes.items():
            stage = self.graph.stages.get(address)
            if stage is None or change.action not in ("create", "update", "replace"):
                continue
            provider = registry.get_provider(change.type)
            notes = getattr(provider, "plan_notes", None)
            if notes is None:
                continue
            try:
                found = notes(self._typed_inputs(stage))
            except Exception:  # noqa: BLE001 - a note is an extra; apply checks for itself
                continue
            self.warnings.extend(f"{address}: {note}" for note in found)

    def _normal(self, selected: set[str], excluded: set[str]) -> dict[str, Change]:
        o = self.options
        changes: dict[str, Change] = {}
        order = self.graph.topological()
        for address in order:
            if address in selected:
                changes[address] = self._change(self.desired[address], self.records.get(address))
        # Recorded stages whose real-world result is gone as a whole: created again, and, like
        # a replacement, they invalidate what was built on them.
        gone: set[str] = set()
        if o.refresh:
            candidates = [
                a
                for a, c in changes.items()
                if c.action in ("noop", "update") and self.records[a].status in COMPLETE_STATUSES
            ]
            for address, (outputs, findings) in self._refresh(candidates).items():
                if outputs is not None and not findings:
                    continue
                drift = (
                    tuple(f.change for f in findings)
                    if outputs is not None
                    else (AttributeChange("(stage)", "exists", None),)
                )
                redo = [f.reason for f in findings if f.redo]
                what = ", ".join(f.reason for f in findings)
                c = changes[address]
                if o.refresh_only:
                    changes[address] = _replace(
                        c, action="read", reason="changed outside mactl", drift=drift, refreshed_outputs=outputs
                    )
                elif outputs is None:
                    changes[address] = _replace(
                        c, action="create", reason="changed outside mactl: it no longer exists", drift=drift
                    )
                    gone.add(address)
                elif redo:
                    # The stage's result is gone: redo it, and (as a replacement) what is built on it.
                    reason = "changed outside mactl: " + ", ".join(redo) + "; redone with what depends on it"
                    changes[address] = _replace(
                        c,
                        action="replace",
                        reason=reason if c.action == "noop" else c.reason + "; also " + reason,
                        drift=drift,
                        resume=False,
                    )
                elif c.action == "noop":
                    changes[address] = _replace(
                        c, action="update", reason=f"changed outside mactl: {what}", drift=drift
                    )
                else:
                    changes[address] = _replace(
                        c, reason=c.reason + f"; also changed outside mactl: {what}", drift=drift
                    )
        if o.refresh_only:
            return {
                a: (c if c.action == "read" else _replace(c, action="noop", reason="unchanged (refresh only)"))
                for a, c in changes.items()
            }

        self._instances(changes)

        # Stages that left the config.
        for address, record in self.records.items():
            if address in self.graph.stages or address not in selected:
                continue
            if record.status == "left_manual":
                continue
            forget = self.graph.blocks.forgets(address)
            changes[address] = Change(
                address=address,
                type=record.type,
                action="forget" if forget is not None else "rollback",
                reason=(
                    f"removed block (from = {forget.from_}): forgotten by mactl, NOT rolled back"
                    if forget is not None
                    else "no longer in the config"
                ),
                before=record.inputs or None,
                depends_on=tuple(record.depends_on),
                moved_from=self.moved_from.get(address),
            )

        # Invalidation: a replaced stage replaces its descendants in the state.
        keep = set(o.keep_downstream)
        replaced_by: dict[str, str] = {}
        partly: set[str] = set()  # stages that change some of their instances
        for address in order:
            stage = self.graph.stages[address]
            current = changes.get(address)
            upstream = next((replaced_by[d] for d in stage.depends_on if d in replaced_by), None)
            partial_up = next((d for d in stage.depends_on if d in partly), None)
            if current is not None and (current.partial or current.instances) and address not in gone:
                if upstream is None:
                    # Its instances already follow the upstream's by key (`_instances`).
                    if current.instance_scope:
                        partly.add(address)
                    continue
            elif upstream is None and partial_up is not None:
                follows = self._follow_instances(address, stage.depends_on, changes) if current is None else None
                if follows is not None:
                    # Not selected, but built on instances that change: the same keys are redone.
                    if follows.instance_scope:
                        changes[address] = follows
                        partly.add(address)
                    continue
                # Built on some instances that change, without instances of its own (or
                # with instances unknown now): redone as a whole.
                upstream = partial_up
            if upstream is not None and address in self.records and self.records[address].status != "left_manual":
                if address in excluded:
                    raise PlanError(
                        f"-exclude {address}: it would be invalidated by the replacement of {upstream}",
                        hint=f"also exclude {upstream}, or keep its descendants with -keep-downstream {upstream}",
                    )
                if current is None or current.action in ("noop", "update", "read"):
                    base = current or self._change(self.desired[address], self.records[address])
                    # A resume from the old checkpoint would build on what the upstream's
                    # replacement removes: a replaced descendant starts over.
                    why = (
                        "no longer exists and is created again"
                        if upstream in gone
                        else ("changes some of its instances" if upstream in partly else "replaced")
                    )
                    current = _replace(
                        base,
                        action="replace",
                        reason=f"upstream {upstream} {why}",
                        resume=False,
                        partial=False,
                        instances=(),
                    )
                    changes[address] = current
            if current is not None and (current.action == "replace" or address in gone) and address not in keep:
                replaced_by[address] = upstream or address
        for address in keep:
            kept_change = changes.get(address)
            if kept_change is not None and kept_change.action in ("replace", "update"):
                kept = [d for d in self.graph.descendants(address) if d in self.records]
                changes[address] = _replace(kept_change, keep_downstream=True)
                self.warnings.append(
                    f"-keep-downstream {address}: {len(kept)} stage(s) built on it are NOT invalidated and may no "
                    "longer match it; you manage their state yourself"
                )
        return changes

    # -- instances ----------------------------------------------------------------------

    def _instance_candidate(self, address: str, change: Change) -> bool:
        """True when the stage's instances are worth computing for `change` (see the module docstring)."""
        stage = self.graph.stages.get(address)
        if stage is None or not self.options.refresh:
            return False
        provider = registry.get_provider(stage.type)
        if not provider.instance_fields:
            return False
        if change.action == "create":
            return True  # shown one by one (or as known after apply)
        record = self.records.get(address)
        if record is None or record.status not in COMPLETE_STATUSES or change.drift or change.resume:
            return False
        if recorded_instances(record.outputs) is None or address in self.options.replaces:
            return False
        if change.action in ("noop", "update"):
            return True
        names = self._names_for(stage.type)
        forcing = {
            names.get(a.path.split(".")[0], a.path.split(".")[0]) for a in change.attributes if a.forces_replacement
        }
        return change.action == "replace" and bool(forcing) and forcing <= provider.instance_fields

    def _desired_instances(self, candidates: list[str]) -> dict[str, dict[str, str] | None]:
        """address → key → digest from each provider's `plan_instances`, in parallel (None: unknown)."""

        def one(address: str) -> tuple[str, dict[str, str] | None]:
            stage = self.graph.stages[address]
            record = self.records.get(address)
            provider = registry.get_provider(stage.type)
            ctx = StageContext(
                address=address,
                type=stage.type,
                inputs=provider.Inputs.model_validate(stage.inputs),
                prior_outputs=record.outputs if record is not None else None,
                upstream={dep: self.records[dep].outputs for dep in stage.depends_on if dep in self.records},
                checkpoint_data=None,
                workdir=Workdir(self.workdir).stage_dir(address),
                config_dir=self.config_dir,
            )
            try:
                return address, provider.plan_instances(ctx)
            except MactlError:
                return address, None  # not knowable now: apply decides, as for a whole stage

        if not candidates:
            return {}
        with ThreadPoolExecutor(max_workers=max(1, min(8, self.options.parallelism * 2))) as pool:
            return dict(pool.map(one, candidates))

    def _instances(self, changes: dict[str, Change]) -> None:
        """Turn the changes of stages with instances into per-instance ones (in place)."""
        order = [a for a in self.graph.topological() if a in changes and self._instance_candidate(a, changes[a])]
        desired = self._desired_instances(order)
        changed_by: dict[str, dict[str, str]] = {}  # stage → key → action, of partial changes
        for address in order:
            c = changes[address]
            want = desired.get(address)
            if c.action == "create":
                narrowed = self.filters.get(address)
                if want is None:
                    changes[address] = _replace(c, instances_unknown=True)
                    if narrowed is not None and (narrowed.targets or narrowed.excludes):
                        self.warnings.append(
                            f"{address}: its instances are known only after apply, so -target/-exclude of an "
                            "instance cannot narrow it: the whole stage is created"
                        )
                    continue
                instances = diff_instances({}, want, filters=narrowed)
                changes[address] = _replace(
                    c,
                    instances=instances,
                    partial=narrowed is not None and any(i.action == "noop" for i in instances),
                )
                continue
            recorded = recorded_instances(self.records[address].outputs)
            if want is None or recorded is None:
                if c.action != "noop":
                    changes[address] = _replace(c, instances_unknown=True)
                continue
            upstream: dict[str, str] = {}
            for dep in self.graph.stages[address].depends_on:
                for key, action in changed_by.get(dep, {}).items():
                    verb = {"create": "created", "replace": "replaced", "rollback": "rolled back"}[action]
                    upstream.setdefault(key, f"upstream {instance_address(dep, key)} {verb}")
            instances = diff_instances(recorded, want, upstream=upstream, filters=self.filters.get(address))
            scope = changed_keys(instances)
            if c.action == "noop" and not scope:
                changes[address] = _replace(c, instances=instances)
                continue
            reason = (
                f"{len(scope)} of {len(instances)} instance(s) change: {summary(instances)}"
                if scope
                else f"no instance changes: {summary(instances)}"
            )
            if c.action != "noop":
                reason = f"inputs changed; {reason}"
            changes[address] = _replace(c, action="update", reason=reason, instances=instances, partial=True)
            if scope:
                changed_by[address] = scope
        for address, narrowed in self.filters.items():
            found = changes.get(address)
            if found is None or found.partial or found.action == "create":
                continue
            if narrowed.replaces or ((narrowed.targets or narrowed.excludes) and found.rolls_back):
                flag = "-replace" if narrowed.replaces else ("-target" if narrowed.targets else "-exclude")
                raise PlanError(
                    f"{flag} {address}[...]: the instances of {address} cannot be computed now "
                    f"(known after apply), so this plan cannot narrow it to an instance",
                    hint="plan with refresh on and the snapshot readable, or name the whole stage",
                )

    def _follow_instances(
        self, address: str, depends_on: Iterable[str], changes: Mapping[str, Change]
    ) -> Change | None:
        """For a recorded stage with instances that the plan left out (-target): a partial
        update replacing the instances whose key an upstream partial change touches.
        None when the stage has no recorded instances (it is then redone as a whole)."""
        record = self.records.get(address)
        recorded = recorded_instances(record.outputs) if record is not None else None
        if record is None or not recorded or not self._has_instances(address) or record.status not in COMPLETE_STATUSES:
            return None
        upstream: dict[str, str] = {}
        for dep in depends_on:
            c = changes.get(dep)
            for key, action in ((c.instance_scope or {}) if c is not None else {}).items():
                verb = {"create": "created", "replace": "replaced", "rollback": "rolled back"}[action]
                upstream.setdefault(key, f"upstream {instance_address(dep, key)} {verb}")
        instances = tuple(
            InstanceChange(k, "replace", upstream[k]) if k in upstream else InstanceChange(k, "noop", "unchanged")
            for k in sorted(recorded)
        )
        base = self._change(self.desired[address], record)
        return _replace(
            base,
            action="update",
            reason=f"{sum(i.action != 'noop' for i in instances)} of {len(instances)} instance(s) change: "
            + summary(instances),
            instances=instances,
            partial=True,
            resume=False,
        )

    def _destroy(self, selected: set[str]) -> dict[str, Change]:
        changes: dict[str, Change] = {}
        for address, record in self.records.items():
            if address not in selected or record.status == "left_manual":
                continue
            stage = self.graph.stages.get(address)
            narrowed = self.filters.get(address)
            recorded = recorded_instances(record.outputs)
            if narrowed is not None and narrowed.targets and recorded is not None:
                if stage is None:
                    raise PlanError(
                        f"-target {address}[...]: the stage is no longer in the config; destroy it as a whole",
                        hint=f"mactl destroy -target {address}",
                    )
                instances = rollback_instances(recorded, narrowed)
                changes[address] = Change(
                    address=address,
                    type=record.type,
                    action="update",
                    reason="destroy: " + summary(instances),
                    before=record.inputs or None,
                    after=self.desired[address].masked,
                    depends_on=tuple(record.depends_on),
                    description=stage.description,
                    instances=instances,
                    partial=True,
                )
                continue
            changes[address] = Change(
                address=address,
                type=record.type,
                action="rollback",
                reason="destroy: its interrupted rollback finishes" if record.status == "rolling_back" else "destroy",
                before=record.inputs or None,
                manual_rollback=stage is not None and stage.lifecycle.rollback == "manual",
                prevent_rollback=stage is not None and stage.lifecycle.prevent_rollback,
                depends_on=tuple(record.depends_on),
                description=stage.description if stage else "",
            )
        return changes

    def _check_prevent_rollback(self, changes: Mapping[str, Change]) -> None:
        blocked = sorted(a for a, c in changes.items() if c.rolls_back and c.prevent_rollback)
        if blocked:
            lines = "\n".join(f"  {a}: {changes[a].reason}" for a in blocked)
            raise PlanError(
                f"this plan would roll back {len(blocked)} stage(s) with lifecycle.preventRollback:\n{lines}",
                hint="change the config so they are not rolled back, keep their descendants with -keep-downstream, "
                "or remove preventRollback",
            )

    def _check_clusters(self, changes: Mapping[str, Change]) -> None:
        """A stage that left the config is rolled back with its clusters' credentials from
        the config (the state never holds them): refuse the plan, naming the first cluster
        the config no longer declares."""
        for address, c in changes.items():
            if address in self.graph.stages or c.action != "rollback" or c.manual_rollback:
                continue
            record = self.records.get(address)
            if record is None or c.forget_only:
                continue
            missing = missing_clusters(record.inputs, self.graph.clusters)
            if missing:
                role, name = missing[0]
                raise PlanError(
                    f"{address} must be rolled back on {role} '{name}', which is no longer in the config, "
                    "and mactl never stores credentials in the state",
                    hint=f"put {role} '{name}' back in the config (its credentials may come from -var or the "
                    f"environment) and roll its stages back first with `mactl destroy -target ADDR`, or forget "
                    f"them with a `removed` block",
                )

    def _check_validate(self, changes: Mapping[str, Change]) -> None:
        problems: list[str] = []
        base_validate = registry_base_validate()
        for address, c in changes.items():
            if c.action not in ("create", "update", "replace", "import"):
                continue
            stage = self.graph.stages[address]
            provider = registry.get_provider(stage.type)
            if type(provider).validate is base_validate:
                continue
            for problem in provider.validate(self._typed_inputs(stage)):
                problems.append(f"  {address}: {problem}")
        if problems:
            raise PlanError("the config does not pass the providers' checks:\n" + "\n".join(problems))

    def _order(self, changes: Mapping[str, Change]) -> list[Change]:
        """Roll-backs and forgets in reverse topological order, then everything else topologically."""
        # A forget (a `removed` block) is, like a rollback, about a stage only the state knows.
        rollbacks = [a for a, c in changes.items() if c.action in ("rollback", "forget")]
        forward_order = self.graph.topological()
        rest = [changes[a] for a in forward_order if a in changes and changes[a].action not in ("rollback", "forget")]
        if not rollbacks:
            return rest
        dag = self._state_dag().copy()
        dag.add_edges_from(self.graph.dag.edges)
        sub = dag.subgraph(rollbacks)
        back = list(reversed(list(nx.lexicographical_topological_sort(sub))))
        return [changes[a] for a in back] + rest


def moved_records(
    records: Mapping[str, StageRecord], moves: Mapping[str, str], blocks: StateBlocks
) -> dict[str, StageRecord]:
    """`records` with every moved record at its new address, its dependencies' addresses
    moved too, and a renamed target's name changed in its recorded inputs (so the rename
    alone is not a change). Raises `PlanError` when a move would land on a recorded stage."""
    landing: dict[str, str] = {}
    for old, new in moves.items():
        if new in records and new not in moves:
            raise PlanError(
                f"moved block: cannot move {old} to {new}: {new} is already in the state",
                hint=f"drop the moved block, or forget the old one first with `mactl state rm {old}`",
            )
        if new in landing:
            raise PlanError(f"moved block: both {landing[new]} and {old} would move to {new}")
        landing[new] = old
    renames = [(b.from_, b.to) for b in blocks.moved if b.kind == "target"]
    out: dict[str, StageRecord] = {}
    for address, record in records.items():
        update: dict[str, Any] = {}
        if any(dep in moves for dep in record.depends_on):
            update["depends_on"] = [moves.get(dep, dep) for dep in record.depends_on]
        if address in moves and renames:
            inputs = rename_clusters(record.inputs, renames)
            if inputs is not record.inputs:
                update["inputs"] = inputs
        out[moves.get(address, address)] = record.model_copy(update=update) if update else record
    return out


def rename_clusters(inputs: dict[str, Any], renames: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`inputs` with each cluster reference (a top-level `{name, endpoint, ...}`) named by
    a renamed target given its new name; `inputs` itself when none is."""
    out = inputs
    for key, value in inputs.items():
        if isinstance(value, dict) and "endpoint" in value:
            for old, new in renames:
                if value.get("name") == old:
                    if out is inputs:
                        out = dict(inputs)
                    out[key] = {**value, "name": new}
    return out


def _clone_inputs(stage: Stage, twin: BaseModel | None) -> BaseModel | None:
    """A clone's typed inputs from its twin's (they differ only in `target`, see
    `mactl.graph.expand`), without validating thousands of shared filter names again; None
    when that shortcut does not hold (no twin, or a schema with model-level validators)."""
    if twin is None:
        return None
    adapter = _target_adapter(type(twin))
    if adapter is None:
        return None
    return twin.model_copy(update={"target": adapter.validate_python(stage.inputs.get("target"))})


@functools.cache
def _target_adapter(model: type[BaseModel]) -> TypeAdapter[Any] | None:
    if model.__pydantic_decorators__.model_validators or "target" not in model.model_fields:
        return None
    annotation: Any = model.model_fields["target"].annotation  # a type, not a string: models are built
    return TypeAdapter(annotation)


def walk_decisions(change: Change, record: StageRecord | None) -> Change:
    """`change` with the decisions the walker takes from the plan (see `Change`), from the
    stage's record in the state the plan is made from."""
    waiting = record is not None and record.status == "awaiting_approval"
    gated = (
        change.approval_required
        and change.action in GATED_ACTIONS
        and not (waiting and record is not None and record.approved_by)
    )
    from_checkpoint = (
        record is not None and change.action in GATED_ACTIONS and not change.rolls_back and (change.resume or waiting)
    )
    forget_only = change.rolls_back and waiting and record is not None and not record.inputs_digest
    if not (gated or from_checkpoint or forget_only):
        return change
    return _replace(change, gated=gated, from_checkpoint=from_checkpoint, forget_only=forget_only)


def registry_base_validate() -> Callable[..., Any]:
    from mactl.providers.base import BaseProvider

    return BaseProvider.validate


def _replace(change: Change, **updates: Any) -> Change:
    from dataclasses import replace

    return replace(change, **updates)


def unfinished_destroy(doc: StateDocument) -> HistoryEntry | None:
    """The start of the last destroy when it did not finish: it never recorded its end
    (killed) or ended stopped (a failure, Ctrl-C), and no apply has run a stage since.
    None when the last destroy finished, or there was none."""
    stopped = False
    for entry in reversed(doc.history):
        if entry.address is None and entry.operation == "destroy":
            if entry.result == "started":
                return entry
            if entry.result != "stopped" or stopped:
                return None
            stopped = True  # its start is further back
        elif entry.operation == "apply" and entry.result == "started":
            return None
    return None


def build_plan(
    graph: StageGraph,
    doc: StateDocument | None,
    options: PlanOptions | None = None,
    *,
    sensitive_values: Collection[str] = (),
    workdir: Path | None = None,
    config_dir: Path | None = None,
) -> Plan:
    """The plan that brings `doc` to `graph` under `options`. See the module docstring."""
    return Planner(
        graph, doc, options or PlanOptions(), sensitive_values=sensitive_values, workdir=workdir, config_dir=config_dir
    ).build()
