"""Inputs of the `teardown` stage: remove the migration tooling."""

from __future__ import annotations

from mactl.schema.common import ClusterRef, Model


class TeardownInputs(Model):
    source: ClusterRef
    target: ClusterRef | None = None
    proxies: list[str] = []  # proxy URLs; default: the capture stage's proxies
    deleteLog: bool = True
    workingIndexPatterns: list[str] = ["mactl-backfill-*"]
