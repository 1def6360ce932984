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
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, create_model, model_validator

from mactl.config.common import (
    Auth,
    IndexFilter,
    LifecycleConfig,
    Model,
    SnapshotRepository,
)
from mactl.config.issues import INTERNAL
from mactl.config.variables import VariableDecl
from mactl.providers.registry import get_provider
from mactl.state.config import LocalStateConfig, StateConfig

NAME_CHARS = "letters, digits, '_' and '-'"


def _address_safe(value: str) -> str:
    if not value or not all(c.isascii() and (c.isalnum() or c in "_-") for c in value):
        raise ValueError(f"a name may contain only {NAME_CHARS} (it becomes part of stage addresses)")
    return value


def _http_endpoint(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
        raise ValueError("an endpoint must be an http:// or https:// URL")
    return value


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


def _block(
    model_name: str,
    stage_type: str,
    *,
    derived: frozenset[str],
    base: type[Model] = StageBlock,
    doc: str,
    **extra: Any,
) -> type[Model]:
    """A config block made from a provider's `Inputs`, minus the fields mactl derives.

    The block accepts exactly the inputs a user may set for that stage type (with the
    provider's own types, defaults and limits), plus `approval`/`lifecycle` and any
    `extra` fields; `derived` ones (source, target, repository…) come from the
    enclosing config. Building it from the schema keeps config and providers in step.
    """
    inputs = get_provider(stage_type).Inputs
    fields: dict[str, Any] = {
        field_name: (info.annotation, info)
        for field_name, info in inputs.model_fields.items()
        if field_name not in derived
    }
    fields.update(extra)
    model = create_model(model_name, __base__=base, __doc__=doc, **fields)
    return model


MetadataConfig = _block(
    "MetadataConfig",
    "metadata",
    derived=frozenset({"source", "target", "repository", "snapshotName"}),
    doc="A migration's `metadata` block: the metadata stage's inputs a user may set.",
)
BackfillConfig = _block(
    "BackfillConfig",
    "backfill",
    derived=frozenset({"target", "repository", "snapshotName"}),
    doc="One `documentBackfillConfigs` entry: the backfill stage's inputs a user may set, and a name.",
    name=(Name | None, None),
)


class MigrationConfig(Model):
    name: Name | None = None
    metadata: MetadataConfig | None = None  # type: ignore[valid-type]
    backfills: list[BackfillConfig] = Field(default_factory=list)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _does_something(self) -> MigrationConfig:
        if self.metadata is None and not self.backfills:
            raise ValueError("a migration needs `metadata`, `documentBackfillConfigs`, or both")
        return self


SnapshotEntry = _block(
    "SnapshotEntry",
    "snapshot",
    derived=frozenset({"source", "repository", "snapshotName", "existing", "indices"}),
    doc="One `snapshot-and-migration-configs` entry: a snapshot and the migrations read from it.",
    name=(Name | None, None),
    existingSnapshot=(ExistingSnapshot | None, None),
    indices=(list[IndexFilter], Field(default_factory=list)),
    migrations=(list[MigrationConfig], Field(default_factory=list)),
)
ReplayerConfig = _block(
    "ReplayerConfig",
    "replay",
    derived=frozenset({"source", "target", "log"}),
    doc="`replayer-config`: the replay stage's inputs a user may set (the log is the capture's).",
)
CaptureConfig = _block(
    "CaptureConfig",
    "capture",
    derived=frozenset({"source"}),
    doc="`capture`: the capture stage's inputs minus `source` (the enclosing source).",
)
ValidationConfig = _block(
    "ValidationConfig",
    "validate",
    derived=frozenset({"source", "target", "repository", "snapshotName"}),
    doc="`validation`: after backfill and replay; on by default, `enabled: false` turns it off.",
    enabled=(bool, True),
)


class SourceMigration(Model):
    source: SourceConfig
    snapshots: list[SnapshotEntry] = Field(default_factory=list)  # type: ignore[valid-type]
    replayer: ReplayerConfig | None = None  # type: ignore[valid-type]
    capture: CaptureConfig | None = None  # type: ignore[valid-type]
    validation: ValidationConfig = Field(default_factory=ValidationConfig)  # type: ignore[valid-type]


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
