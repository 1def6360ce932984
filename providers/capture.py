"""Capture stage: capture proxies in front of the source, recording to a capture log.

Inputs schema and replacement rules only; apply/rollback/read land with the capture
issue. The stage runs the seed's inner workflow: initialise the log, roll out proxies,
check all healthy and not capturing, signal them to write, check all capturing.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mactl.config.common import ClusterRef, Model
from mactl.providers.base import BaseProvider


class FileLog(Model):
    type: Literal["file"] = "file"
    path: str = ".mactl/capture"
    segmentBytes: int = 64 * 1024 * 1024
    fsync: Literal["always", "interval", "never"] = "interval"


class KafkaLog(Model):
    type: Literal["kafka"]
    bootstrapServers: str
    topic: str = "mactl-capture"
    partitions: int = 1


class ProxySpec(Model):
    listen: str = "127.0.0.1:19210"


class CaptureFilters(Model):
    skipHeaders: dict[str, str] = Field(default_factory=dict)  # header name -> regex
    skipPaths: list[str] = Field(default_factory=list)  # regexes


class Inputs(Model):
    source: ClusterRef
    log: FileLog | KafkaLog = Field(default_factory=FileLog, discriminator="type")
    proxies: list[ProxySpec] = Field(default_factory=lambda: [ProxySpec()])
    filters: CaptureFilters = Field(default_factory=CaptureFilters)


class CaptureProvider(BaseProvider):
    type = "capture"
    Inputs: ClassVar = Inputs
    replace_on = frozenset({"source", "log", "proxies"})
    available = False
