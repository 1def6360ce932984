"""Inputs of the `capture` stage, and the capture log blocks the replay stage shares."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from mactl.schema.common import ClusterRef, Model


class FileLog(Model):
    type: Literal["file"] = "file"
    path: str = ".mactl/capture"
    segmentBytes: PositiveInt = 64 * 1024 * 1024
    fsync: Literal["always", "interval", "never"] = "interval"


class KafkaLog(Model):
    type: Literal["kafka"]
    bootstrapServers: str
    topic: str = "mactl-capture"
    partitions: PositiveInt = 1


# A capture log block (a file log unless `type: kafka` says otherwise).
CaptureLog = FileLog | KafkaLog


class ProxySpec(Model):
    listen: str = "127.0.0.1:19210"


class CaptureFilters(Model):
    skipHeaders: dict[str, str] = Field(default_factory=dict)  # header name -> regex
    skipPaths: list[str] = Field(default_factory=list)  # regexes


class _CaptureWiring(Model):
    source: ClusterRef


class CaptureUserInputs(Model):
    """The capture inputs a user sets in a source's `capture` block."""

    log: FileLog | KafkaLog = Field(default_factory=FileLog, discriminator="type")
    proxies: list[ProxySpec] = Field(default_factory=lambda: [ProxySpec()])
    filters: CaptureFilters = Field(default_factory=CaptureFilters)
    deleteTopicOnRollback: bool = False
    healthTimeoutSeconds: PositiveFloat = 30.0


class CaptureInputs(CaptureUserInputs, _CaptureWiring):
    """A capture stage's inputs: the options, and the source they capture in front of."""
