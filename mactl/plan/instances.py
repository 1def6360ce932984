"""Per-instance diffs: which parts of a stage (its indices, templates, pipelines) change.

A stage type with instances (`Provider.instance_fields`) records, per instance key, the
digest of what it made (`outputs["instances"]`) and tells at plan time the digest each
instance would have now (`Provider.plan_instances`). Comparing the two says which
instances to create, replace or roll back; an instance an upstream instance of the same
key replaces is replaced too (the backfill of an index whose metadata is redone). The
planner then runs the stage as a partial update of only those instances instead of
replacing all of it. This module is pure: the planner hands it what it read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mactl.address import Address, instance_key
from mactl.plan.definition import InstanceChange

COMPLETE = "complete"


@dataclass
class InstanceFilters:
    """What -target, -exclude and -replace said about one stage's instances."""

    targets: list[Address] = field(default_factory=list)  # empty: every instance
    excludes: list[Address] = field(default_factory=list)
    replaces: list[Address] = field(default_factory=list)

    def targeted(self, key: str) -> bool:
        return not self.targets or any(a.matches_key(key) for a in self.targets)

    def excluded(self, key: str) -> bool:
        return any(a.matches_key(key) for a in self.excludes)

    def replaced(self, key: str) -> bool:
        return any(a.matches_key(key) for a in self.replaces)


def recorded_instances(outputs: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]] | None:
    """key → the instance's record in a stage's outputs; None for a stage recorded without them."""
    found = (outputs or {}).get("instances")
    if not isinstance(found, Mapping):
        return None
    return {str(k): v for k, v in found.items() if isinstance(v, dict)}  # plain JSON: no ABC check per key


def diff_instances(
    recorded: Mapping[str, Mapping[str, Any]],
    desired: Mapping[str, str],
    *,
    upstream: Mapping[str, str] | None = None,
    filters: InstanceFilters | None = None,
) -> tuple[InstanceChange, ...]:
    """One `InstanceChange` per key in either side, sorted by key.

    `upstream` maps keys an upstream stage changes to the reason ("upstream … replaced"):
    an instance of the same key that is otherwise unchanged is replaced too. A change the
    filters leave out (not targeted, excluded) is shown as a no-op saying so.
    """
    upstream = upstream or {}
    filters = filters or InstanceFilters()
    narrowing = bool(filters.targets or filters.excludes)
    out: list[InstanceChange] = []
    for key in sorted(set(recorded) | set(desired)):
        before = recorded.get(key)
        if before is None:
            change = InstanceChange(key, "create", "new")
        elif key not in desired:
            change = InstanceChange(key, "rollback", "no longer selected")
        elif before.get("status", COMPLETE) != COMPLETE:
            change = InstanceChange(key, "replace", f"status {before.get('status')}")
        elif before.get("digest") != desired[key]:
            change = InstanceChange(key, "replace", "its definition changed")
        elif filters.replaces and filters.replaced(key):
            change = InstanceChange(key, "replace", "replacement requested with -replace")
        elif key in upstream:
            change = InstanceChange(key, "replace", upstream[key])
        else:
            change = InstanceChange(key, "noop", "unchanged")
        if change.action != "noop" and narrowing:
            if filters.excluded(key):
                change = InstanceChange(key, "noop", f"left out with -exclude (would {change.action})")
            elif not filters.targeted(key):
                change = InstanceChange(key, "noop", f"not targeted (would {change.action})")
        out.append(change)
    return tuple(out)


def rollback_instances(
    recorded: Collection[str], filters: InstanceFilters, reason: str = "destroy"
) -> tuple[InstanceChange, ...]:
    """`destroy -target ADDR["key"]`: roll back the targeted recorded instances, keep the rest."""
    return tuple(
        InstanceChange(key, "rollback", reason)
        if filters.targeted(key) and not filters.excluded(key)
        else InstanceChange(key, "noop", "not targeted")
        for key in sorted(recorded)
    )


def changed_keys(instances: Sequence[InstanceChange]) -> dict[str, str]:
    """key → action, for the instances that do something."""
    return {i.key: i.action for i in instances if i.action != "noop"}


def summary(instances: Sequence[InstanceChange]) -> str:
    """`2 to replace, 1 to create, 17 unchanged` (only the non-zero parts)."""
    counts: dict[str, int] = {}
    for i in instances:
        counts[i.action] = counts.get(i.action, 0) + 1
    words = {"create": "to create", "replace": "to replace", "rollback": "to roll back", "noop": "unchanged"}
    return ", ".join(f"{counts[a]} {words[a]}" for a in ("create", "replace", "rollback", "noop") if counts.get(a))


def _row_key(row: Any) -> str | None:
    if isinstance(row, Mapping) and isinstance(row.get("kind"), str) and isinstance(row.get("name"), str):
        return instance_key(row["kind"], row["name"])
    return None


def instance_view(outputs: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Everything a stage's outputs record about one instance (`mactl state show ADDR["key"]`):
    its entry in each output keyed by instance key, and its rows in lists of items."""
    found: dict[str, Any] = {}
    for name, value in outputs.items():
        if isinstance(value, Mapping):
            if key in value:
                found[name] = value[key]
            items = value.get("items")
            if isinstance(items, list) and (rows := [r for r in items if _row_key(r) == key]):
                found[f"{name}.items"] = rows
        elif isinstance(value, list) and (rows := [r for r in value if _row_key(r) == key]):
            found[name] = rows
    return found


def forget_instance(outputs: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`outputs` without any record of one instance (`mactl state rm ADDR["key"]`): the stage
    no longer owns it, so neither a partial redo nor a rollback of the stage touches it."""
    out: dict[str, Any] = {}
    for name, value in outputs.items():
        if isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != key}
            items = value.get("items")
            if isinstance(items, list):
                value["items"] = [r for r in items if _row_key(r) != key]
        elif isinstance(value, list):
            value = [r for r in value if _row_key(r) != key]
        out[name] = value
    return out
