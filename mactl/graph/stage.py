"""What a stage is: one node of the migration graph, as plain data.

The graph expander (`mactl.graph.expand`) builds these from the canonical config; the
planner diffs their `inputs` against the state; the apply walker hands them to the
provider registered for `type`. Nothing here talks to a cluster or to the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RollbackMode = Literal["auto", "manual"]


@dataclass(frozen=True)
class Lifecycle:
    """User control over invalidation, from the config's `lifecycle` block.

    `prevent_rollback`: a plan that would roll this stage back fails, naming it.
    `ignore_changes`: input fields (dotted paths) whose changes the planner ignores.
    `rollback`: "manual" means the plan lists what must be undone by hand and the state
    records that it was left, instead of calling the provider's rollback.
    """

    prevent_rollback: bool = False
    ignore_changes: tuple[str, ...] = ()
    rollback: RollbackMode = "auto"


@dataclass(frozen=True)
class Stage:
    """One unit of work in the migration, with a stable readable address.

    Addresses look like `snapshot.source.snap1` or
    `backfill.source.snap1.target_1.m0.b0`: the first segment is the stage type.
    `inputs` is the JSON-able desired configuration of this stage; it is what the planner
    diffs, and it must validate against the provider's `Inputs` model for `type`.
    `sensitive_paths` are dotted paths inside `inputs` that hold secrets: renderers and
    the state layer mask them. `clone_of` is set on per-target stages stamped out for a
    second (third, …) target, naming the first target's twin, so graphs can show them
    as clones.
    """

    address: str
    type: str
    inputs: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    approval_required: bool = False
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    sensitive_paths: frozenset[str] = frozenset()
    clone_of: str | None = None
    description: str = ""
