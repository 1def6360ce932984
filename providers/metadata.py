"""Metadata stage: recreates templates, indices and aliases on the target.

Inputs schema and replacement rules only; apply/rollback/read land with the metadata
provider issue.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mactl.config.common import ClusterRef, IndexFilter, Model, SnapshotRepository, TransformSpec
from mactl.providers.base import BaseProvider


class Inputs(Model):
    source: ClusterRef
    target: ClusterRef
    repository: SnapshotRepository
    snapshotName: str
    indices: list[IndexFilter] = []  # parent filters first; a name must pass all
    from_: Literal["snapshot", "live"] = Field("snapshot", alias="from")
    transforms: list[TransformSpec] = []
    onExisting: Literal["fail", "skip", "recreate"] = "fail"
    multiTypeMode: Literal["union", "fail"] = "union"
    templates: bool = True


class MetadataProvider(BaseProvider):
    type = "metadata"
    Inputs: ClassVar = Inputs
    replace_on = frozenset(
        {"source", "target", "repository", "snapshotName", "indices", "from_", "transforms", "multiTypeMode"}
    )
    available = False
