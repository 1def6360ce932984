"""What a plan IS: an ordered list of stage changes and what they were computed from.

Plain data only. Building it is `builder`, showing it is `render_*`, storing it is
`planfile`, running it is `mactl.apply`. Every value in here is already masked, so a
plan can be rendered, saved or logged without leaking a secret.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "replace", "rollback", "noop", "read"]
ACTIONS_IN_ORDER: tuple[Action, ...] = ("rollback", "replace", "create", "update", "read", "noop")

# The Terraform-style action list each action maps to in JSON output.
JSON_ACTIONS: dict[str, list[str]] = {
    "create": ["create"],
    "update": ["update"],
    "replace": ["delete", "create"],
    "rollback": ["delete"],
    "noop": ["no-op"],
    "read": ["read"],
}


@dataclass(frozen=True)
class AttributeChange:
    """One input field that differs. `path` is dotted (`indices.0.names`)."""

    path: str
    before: Any
    after: Any
    forces_replacement: bool = False
    sensitive: bool = False


@dataclass(frozen=True)
class Change:
    """What the plan will do to one stage, and why.

    `before` is what the state recorded (masked), `after` the desired inputs (masked);
    either is None when there is no such side. `manual_rollback` means the rollback is
    left to a person (`lifecycle.rollback: manual`). `drift` lists what refresh found
    changed outside mactl. `resume` means a tainted stage continues from its checkpoint
    instead of being rolled back first.
    """

    address: str
    type: str
    action: Action
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    attributes: tuple[AttributeChange, ...] = ()
    approval_required: bool = False
    manual_rollback: bool = False
    prevent_rollback: bool = False
    keep_downstream: bool = False
    resume: bool = False
    depends_on: tuple[str, ...] = ()
    description: str = ""
    drift: tuple[AttributeChange, ...] = ()
    refreshed_outputs: dict[str, Any] | None = None

    @property
    def rolls_back(self) -> bool:
        """True when this change undoes something first (rollback, or a replace that is not a resume)."""
        return self.action == "rollback" or (self.action == "replace" and not self.resume)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        data = dict(data)
        data["attributes"] = tuple(AttributeChange(**a) for a in data.get("attributes", ()))
        data["drift"] = tuple(AttributeChange(**a) for a in data.get("drift", ()))
        data["depends_on"] = tuple(data.get("depends_on", ()))
        return cls(**data)


@dataclass
class Plan:
    """An ordered change set: roll-backs (reverse topological), then the rest (topological).

    `lineage`/`serial` identify the state it was computed from (a plan file made from
    another state is refused as stale). `variables` are the values used, sensitive ones
    masked; `sensitive_variables` names them so an apply from a plan file knows what must
    be supplied again. `config_digest` is a hash of every stage's masked inputs.
    """

    changes: list[Change]
    lineage: str | None
    serial: int
    workspace: str = "default"
    config_path: str = ""
    config_digest: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    sensitive_variables: list[str] = field(default_factory=list)
    mode: Literal["normal", "destroy", "refresh-only"] = "normal"
    refreshed: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    stage_count: int = 0

    def actionable(self) -> list[Change]:
        """The changes that do something (everything but no-ops)."""
        return [c for c in self.changes if c.action != "noop"]

    def counts(self) -> dict[str, int]:
        counts = {a: 0 for a in ACTIONS_IN_ORDER}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return any(c.action != "noop" for c in self.changes)

    def summary_line(self) -> str:
        c = self.counts()
        if self.mode == "refresh-only":
            return f"Refresh: {c['read']} stage(s) changed outside mactl will be recorded in the state."
        return (
            f"Plan: {c['create']} to create, {c['update']} to update, "
            f"{c['replace']} to replace, {c['rollback']} to roll back."
        )

    def colors(self) -> dict[str, str]:
        """address → action, for `mactl graph --plan`."""
        return {c.address: c.action for c in self.changes}
