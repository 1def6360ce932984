"""Inputs of the `metadata` stage: recreate templates, indices and aliases on the target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mactl.schema.common import ClusterRef, IndexFilter, Model, SnapshotRepository, TransformSpec


class _MetadataWiring(Model):
    source: ClusterRef
    target: ClusterRef
    repository: SnapshotRepository
    snapshotName: str


class PipelineSelection(Model):
    """Which ingest pipelines the metadata stage brings along.

    `referenced`: the pipelines the migrated indices and templates name in
    `index.default_pipeline` / `index.final_pipeline` (and the pipelines those call);
    `all`: every pipeline on the source; `none`: no pipeline (references are still checked
    against the target). `filters` select by pipeline name, the one filter syntax.
    """

    include: Literal["referenced", "all", "none"] = "referenced"
    filters: list[IndexFilter] = []


class MetadataUserInputs(Model):
    """The metadata inputs a user sets in a migration's `metadata` block."""

    indices: list[IndexFilter] = []  # parent filters first; a name must pass all
    from_: Literal["snapshot", "live"] = Field("snapshot", alias="from")
    transforms: list[TransformSpec] = []
    onExisting: Literal["fail", "skip", "recreate"] = "fail"
    multiTypeMode: Literal["union", "fail"] = "union"
    templates: bool = True
    # Which templates (by name, the one filter syntax) come along; empty = all of them.
    templateFilters: list[IndexFilter] = []
    # "fail": any failed item fails the stage (evaluation failures before anything is
    # written); "continue": failed items are reported and the rest is created.
    onItemFailure: Literal["fail", "continue"] = "fail"
    pipelines: PipelineSelection = PipelineSelection()


class MetadataInputs(MetadataUserInputs, _MetadataWiring):
    """A metadata stage's inputs: the options, and what mactl derives from the config."""
