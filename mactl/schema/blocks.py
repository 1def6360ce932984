"""The config's state-management blocks: `moved`, `removed` and `import` (Terraform's habits).

They change what the state says, not what runs on a cluster:
- `moved` renames: a stage (by address) or every stage carrying a name (a
  snapshot entry, migration, target, backfill or workflow step) keeps its state under
  its new address instead of being rolled back and created again;
- `removed` forgets: stages that left the config are dropped from the state without
  being rolled back (`lifecycle.destroy: false`, the default), or rolled back as
  usual (`destroy: true`, the same as having no block);
- `import` adopts: a stage not in the state takes over what already exists on the
  clusters (its result must match what the stage would create) instead of creating it.

Only the shape lives here; what the names must refer to is checked by the config
loader and the graph expander, and what they do to a state by the planner.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mactl.schema.common import Model, NonEmptyStr

# The names a `moved` block can rename, and the stage-address segment each one is.
MoveKind = Literal["snapshot", "migration", "target", "backfill", "step"]


class MovedBlock(Model):
    """`{from: ADDR, to: ADDR}` moves one stage; `{kind: target, from: old, to: new}`
    renames a name everywhere it appears in a stage address."""

    from_: NonEmptyStr = Field(alias="from", description="the old address (or, with `kind`, the old name)")
    to: NonEmptyStr = Field(description="the new address (or, with `kind`, the new name), in the config")
    kind: MoveKind | None = Field(
        None, description="rename a name of this kind in every address; without it, `from`/`to` are stage addresses"
    )


class RemovedLifecycle(Model):
    destroy: bool = Field(False, description="true rolls the stages back as usual; false only forgets them")


class RemovedBlock(Model):
    """`{from: ADDR}`: stages that left the config at ADDR (a `*` wildcard matches any run
    of characters) are forgotten, not rolled back."""

    from_: NonEmptyStr = Field(alias="from", description="a stage address that left the config, or a `*` pattern")
    lifecycle: RemovedLifecycle = Field(default_factory=RemovedLifecycle)


class ImportBlock(Model):
    """`{to: ADDR, id: ...}`: the stage at ADDR adopts what exists. `id` names it the way
    the stage type expects (a snapshot's name; for target-side stages it may be left out:
    the stage's own inputs say what it would create)."""

    to: NonEmptyStr = Field(description="the stage (snapshot or metadata) that adopts what exists")
    id: str | None = Field(None, description="what to adopt; by default what the stage's inputs name")
