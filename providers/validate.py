"""Validation stage: proves the target is right (counts, sampled docs, mappings, queries).

Inputs schema and replacement rules only; apply lands with the validation issue.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mactl.config.common import ClusterRef, IndexFilter, Model, SnapshotRepository
from mactl.providers.base import BaseProvider


class Thresholds(Model):
    maxCountDiff: int = 0
    minSampleMatch: float = 1.0
    minStatusMatchRate: float = 0.99


class Inputs(Model):
    source: ClusterRef
    target: ClusterRef
    repository: SnapshotRepository | None = None
    snapshotName: str | None = None
    indices: list[IndexFilter] = []
    sampleSize: int = 100
    queries: list[dict[str, Any]] = []
    thresholds: Thresholds = Thresholds()


class ValidateProvider(BaseProvider):
    type = "validate"
    Inputs: ClassVar = Inputs
    replace_on = frozenset()
    available = False
