"""Replay stage: replays captured traffic onto a target from the snapshot's start point.

Inputs schema and replacement rules only; apply/rollback/read land with the replay
issue. Speed and throughput limits update in place; a new log or transform replaces.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mactl.config.common import ClusterRef, Model, TransformSpec
from mactl.providers.base import BaseProvider
from mactl.providers.capture import FileLog, KafkaLog


class Inputs(Model):
    source: ClusterRef
    target: ClusterRef
    log: FileLog | KafkaLog = Field(default_factory=FileLog, discriminator="type")
    maxSpeedupFactor: float = 1.0
    maxThroughputMbps: float | None = None
    transforms: list[TransformSpec] = []
    maxLagSeconds: float = 5.0
    lagWindowSeconds: float = 10.0
    follow: bool = False


class ReplayProvider(BaseProvider):
    type = "replay"
    Inputs: ClassVar = Inputs
    replace_on = frozenset({"source", "target", "log", "transforms"})
    available = False
