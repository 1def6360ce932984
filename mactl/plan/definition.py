"""What a plan IS: an ordered list of stage changes and what they were computed from.

Plain data only. Building it is `builder`, showing it is `render_*`, storing it is
`planfile`, running it is `mactl.apply`. Every value in here is already masked, so a
plan can be rendered, saved or logged without leaking a secret.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "replace", "rollback", "noop", "read", "forget", "import"]
ACTIONS_IN_ORDER: tuple[Action, ...] = ("rollback", "forget", "replace", "create", "import", "update", "read", "noop")

# The Terraform-style action list each action maps to in JSON output.
JSON_ACTIONS: dict[str, list[str]] = {
    "create": ["create"],
    "update": ["update"],
    "replace": ["delete", "create"],
    "rollback": ["delete"],
    "noop": ["no-op"],
    "read": ["read"],
    # Terraform's word for a `removed` block with `destroy = false`: out of the state, left running.
    "forget": ["forget"],
    # An `import` block: what exists is adopted (checked to match at plan), nothing is created.
    "import": ["import"],
}

# The actions an approval gate stops: a gate guards doing something, never undoing it.
GATED_ACTIONS: frozenset[str] = frozenset({"create", "update", "replace"})


@dataclass(frozen=True)
class AttributeChange:
    """One input field that differs. `path` is dotted (`indices.0.names`)."""

    path: str
    before: Any
    after: Any
    forces_replacement: bool = False
    sensitive: bool = False


@dataclass(frozen=True)
class InstanceChange:
    """What the plan will do to one instance of a stage (one index, template or pipeline of
    a metadata stage, one index of a backfill): `create`, `replace`, `rollback` or `noop`.
    `key` is the instance key (`mactl.address`)."""

    key: str
    action: Action
    reason: str = ""


@dataclass(frozen=True)
class Change:
    """What the plan will do to one stage, and why.

    `before` is what the state recorded (masked), `after` the desired inputs (masked);
    either is None when there is no such side. `manual_rollback` means the rollback is
    left to a person (`lifecycle.rollback: manual`). `drift` lists what refresh found
    changed outside mactl. `resume` means a tainted stage continues from its checkpoint
    instead of being rolled back first.

    `instances` lists the stage's instances one by one when the planner could compute
    them (`Provider.plan_instances`); `instances_unknown` says they are known only after
    apply (the snapshot is not readable yet). `partial` means the walker runs only the
    changed instances (`instance_scope`), the others left as they are: the change is an
    `update` of the stage (or a `create` narrowed by `-target ADDR["key"]`).

    Three decisions for the walker, taken by the planner from the state the plan was made
    from (the walker does not derive them again), each with its invariant:
    - `gated`: the walk stops here until `mactl approve ADDR`: approval is required, the
      action is one in `GATED_ACTIONS`, and the state holds no approval for it yet.
      Implies `approval_required` and a gated action.
    - `from_checkpoint`: the provider is handed the checkpoint the stage's record holds
      (a resume, or a stage that stopped at its gate after a run). Implies a create,
      update or replace that does not roll back first (`not rolls_back`).
    - `forget_only`: undoing it only removes its record, because the stage never ran (it
      only waited at its approval gate); no provider is called. Implies `rolls_back`.

    `moved_from` is the address the state recorded the stage under when a `moved` block
    renamed it: the record moves to `address` (no replacement); `action` is what else
    the stage needs. A `forget` (a `removed` block) drops the record and calls no provider.
    An `import` (an `import` block, `mactl import`) adopts what exists instead of creating
    it (`import_id`: what to adopt; None: what the inputs name); the stage then owns it.
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
    gated: bool = False
    from_checkpoint: bool = False
    forget_only: bool = False
    instances: tuple[InstanceChange, ...] = ()
    partial: bool = False
    instances_unknown: bool = False
    moved_from: str | None = None
    import_id: str | None = None

    def __post_init__(self) -> None:
        if self.gated and not (self.approval_required and self.action in GATED_ACTIONS):
            raise ValueError(f"{self.address}: only a {'/'.join(sorted(GATED_ACTIONS))} that needs approval is gated")
        if self.from_checkpoint and (self.action not in GATED_ACTIONS or self.rolls_back):
            raise ValueError(f"{self.address}: only a change that does not roll back first resumes a checkpoint")
        if self.forget_only and not self.rolls_back:
            raise ValueError(f"{self.address}: only a change that rolls back can forget its record")
        if self.partial and self.action not in ("create", "update"):
            raise ValueError(f"{self.address}: only a create or an update does some of its instances")

    @property
    def instance_scope(self) -> dict[str, str] | None:
        """key → action of the instances a partial change runs (None: the whole stage)."""
        if not self.partial:
            return None
        return {i.key: i.action for i in self.instances if i.action != "noop"}

    def instance_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {a: 0 for a in ACTIONS_IN_ORDER}
        for instance in self.instances:
            counts[instance.action] += 1
        return counts

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
        data["instances"] = tuple(InstanceChange(**i) for i in data.get("instances", ()))
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
    # Sensitive variables whose value was the config's default: referenced, not stored;
    # an apply of the saved plan reads them from the config again.
    sensitive_from_config: list[str] = field(default_factory=list)
    mode: Literal["normal", "destroy", "refresh-only"] = "normal"
    refreshed: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    stage_count: int = 0
    # Recorded address → new address, for every record a `moved` block renames (selected or
    # not: the state's addresses move together, in one write, before the walk starts).
    moves: dict[str, str] = field(default_factory=dict)

    def actionable(self) -> list[Change]:
        """The changes that do something (everything but no-ops that only stay where they are)."""
        return [c for c in self.changes if c.action != "noop" or c.moved_from]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {a: 0 for a in ACTIONS_IN_ORDER}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return bool(self.moves) or any(c.action != "noop" for c in self.changes)

    def instance_counts(self) -> dict[str, int]:
        """Changed instances of partially changed stages, by action."""
        counts: dict[str, int] = {a: 0 for a in ACTIONS_IN_ORDER}
        for change in self.changes:
            if change.partial:
                for action, n in change.instance_counts().items():
                    counts[action] += n
        return counts

    def summary_line(self) -> str:
        c = self.counts()
        if self.mode == "refresh-only":
            return f"Refresh: {c['read']} stage(s) changed outside mactl will be recorded in the state."
        extra = "".join(
            f", {n} to {word}"
            for n, word in ((c["import"], "import"), (len(self.moves), "move"), (c["forget"], "forget"))
            if n
        )
        line = (
            f"Plan: {c['create']} to create, {c['update']} to update, "
            f"{c['replace']} to replace, {c['rollback']} to roll back{extra}."
        )
        i = self.instance_counts()
        if any(change.partial for change in self.changes):
            line += f" Instances: {i['create']} to create, {i['replace']} to replace, {i['rollback']} to roll back."
        return line

    def colors(self) -> dict[str, str]:
        """address → action, for `mactl graph --plan`."""
        return {c.address: c.action for c in self.changes}
