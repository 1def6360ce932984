"""The canonical config model: one shape, whatever shape the user wrote.

The seed's three shapes (a `targets` list, a single `target`, a flat single `source`)
are rewritten into this one by `mactl.config.normalize` before validation, so the
graph expander only ever sees:

    Config
      targets: [TargetConfig]
      sources: [SourceMigration]          # `source-migration-configurations`
        source: SourceConfig              #   with snapshotRepository
        snapshots: [SnapshotEntry]        #   `snapshot-and-migration-configs` / `static-migration-configs`
          migrations: [MigrationConfig]   #     metadata + backfills (`documentBackfillConfigs`)
        replayer / capture / validation
      workflow: [WorkflowStep]            # manual, switchover, disable_capture, teardown
      state, variables

After loading, every `name` is filled in (given or generated) and index filters and
transforms are lists. Field names are the user's camelCase keys, so the paths in error
messages read like the file.

A block that produces stages extends that stage type's `XUserInputs` (from
`mactl.schema`): it accepts exactly the inputs a user may set, with the stage's own
types, defaults and limits, plus `approval`/`lifecycle` and its own config-only keys;
the rest (source, target, repository…) comes from the enclosing config.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from mactl.config.issues import INTERNAL
from mactl.config.variables import VariableDecl
from mactl.schema.backfill import BackfillUserInputs
from mactl.schema.blocks import ImportBlock, MovedBlock, RemovedBlock
from mactl.schema.capture import CaptureUserInputs
from mactl.schema.common import Auth, IndexFilter, LifecycleConfig, Model, SnapshotRepository, check_http_url
from mactl.schema.metadata import MetadataUserInputs
from mactl.schema.replay import ReplayUserInputs
from mactl.schema.snapshot import SnapshotUserInputs
from mactl.schema.validate import ValidateUserInputs
from mactl.state.config import LocalStateConfig, StateConfig

NAME_CHARS = "letters, digits, '_' and '-'"
# A stage address (up to five names) is a folder name under `.mactl/work`, which file
# systems cap at 255 bytes: five names of 40 and the stage type stay below it.
NAME_MAX = 40


def _address_safe(value: str) -> str:
    if not value or not all(c.isascii() and (c.isalnum() or c in "_-") for c in value):
        raise ValueError(f"a name may contain only {NAME_CHARS} (it becomes part of stage addresses)")
    if len(value) > NAME_MAX:
        raise ValueError(f"a name may be at most {NAME_MAX} characters long (it becomes part of folder names)")
    return value


def _http_endpoint(value: str) -> str:
    return check_http_url(value)


Name = Annotated[str, AfterValidator(_address_safe)]
Endpoint = Annotated[str, AfterValidator(_http_endpoint)]


class StageBlock(Model):
    """Options of every config block that produces stages (copied to each stage)."""

    approval: Literal["required"] | None = None
    lifecycle: LifecycleConfig | None = None


class TargetConfig(Model):
    name: Name | None = None
    endpoint: Endpoint
    auth: Auth = Field(default_factory=Auth)
    insecure: bool = False


class SourceConfig(TargetConfig):
    snapshotRepository: SnapshotRepository | None = None


class ExistingSnapshot(Model):
    """A snapshot taken outside mactl. `repository` may be a registered repository's name
    (normalised to `repositoryName`, combined with `source.snapshotRepository`) or a full
    repository description."""

    name: str
    repository: SnapshotRepository | None = None
    repositoryName: str | None = Field(None, json_schema_extra={INTERNAL: True})


class MetadataConfig(MetadataUserInputs, StageBlock):
    """A migration's `metadata` block: the metadata stage's inputs a user may set."""


class BackfillConfig(BackfillUserInputs, StageBlock):
    """One `documentBackfillConfigs` entry: the backfill stage's inputs a user may set, and a name."""

    name: Name | None = None


class MigrationConfig(Model):
    name: Name | None = None
    metadata: MetadataConfig | None = None
    backfills: list[BackfillConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> MigrationConfig:
        if self.metadata is None and not self.backfills:
            raise ValueError("a migration needs `metadata`, `documentBackfillConfigs`, or both")
        return self


class SnapshotEntry(SnapshotUserInputs, StageBlock):
    """One `snapshot-and-migration-configs` entry: a snapshot and the migrations read from it."""

    name: Name | None = None
    existingSnapshot: ExistingSnapshot | None = None
    indices: list[IndexFilter] = Field(default_factory=list)
    migrations: list[MigrationConfig] = Field(default_factory=list)


class ReplayerConfig(ReplayUserInputs, StageBlock):
    """`replayer-config`: the replay stage's inputs a user may set (the log is the capture's)."""


class CaptureConfig(CaptureUserInputs, StageBlock):
    """`capture`: the capture stage's inputs minus `source` (the enclosing source)."""


class ValidationConfig(ValidateUserInputs, StageBlock):
    """`validation`: after backfill and replay; on by default, `enabled: false` turns it off."""

    enabled: bool = True


class SourceMigration(Model):
    source: SourceConfig
    snapshots: list[SnapshotEntry] = Field(default_factory=list)
    replayer: ReplayerConfig | None = None
    capture: CaptureConfig | None = None
    validation: ValidationConfig = Field(default_factory=ValidationConfig)


WorkflowType = Literal["manual", "switchover", "disable_capture", "teardown"]


class WorkflowStep(StageBlock):
    """A later step of the seed's idealized workflow (switch the proxy, upgrade clients…).

    `after` lists stage addresses it waits for; by default the first step waits for every
    validate stage and each later step for the step before it. `source`/`target` name the
    clusters the step acts on; `source` defaults to the only source (several need a
    name), `target` to the first target.
    """

    type: WorkflowType
    name: Name
    instructions: str | None = None
    after: list[str] | None = None
    source: str | None = None
    target: str | None = None

    @model_validator(mode="after")
    def _manual_has_instructions(self) -> WorkflowStep:
        if self.type == "manual" and not (self.instructions and self.instructions.strip()):
            raise ValueError("a manual stage needs `instructions` (what the person must do)")
        return self


class Config(Model):
    variables: dict[str, VariableDecl] = Field(default_factory=dict)
    state: StateConfig = Field(default_factory=LocalStateConfig)
    targets: Annotated[list[TargetConfig], Field(min_length=1)]
    sources: Annotated[list[SourceMigration], Field(min_length=1)]
    workflow: list[WorkflowStep] = Field(default_factory=list)
    moved: list[MovedBlock] = Field(default_factory=list)
    removed: list[RemovedBlock] = Field(default_factory=list)
    imports: list[ImportBlock] = Field(default_factory=list, alias="import")
    allowOutsidePaths: bool = Field(
        False,
        description="Files mactl writes (local state, file capture logs, dead letters) stay under the config's "
        "folder; set true to allow absolute paths elsewhere. A relative path that climbs out (`..`) is always refused.",
    )

    # Text of every sensitive variable's value, set by the loader, so that the graph
    # expander can mark inputs that came from one (`Stage.sensitive_paths`).
    _sensitive_values: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def sensitive_values(self) -> frozenset[str]:
        return self._sensitive_values


__all__ = [
    "BackfillConfig",
    "CaptureConfig",
    "Config",
    "ExistingSnapshot",
    "MetadataConfig",
    "MigrationConfig",
    "Name",
    "ReplayerConfig",
    "SnapshotEntry",
    "SourceConfig",
    "SourceMigration",
    "StageBlock",
    "TargetConfig",
    "ValidationConfig",
    "WorkflowStep",
]
