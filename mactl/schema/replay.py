"""Inputs of the `replay` stage, and the replayer's tuning defaults.

The replayer job spec (`mactl.capture.spec.ReplaySpec`, what `mactl replay run` reads)
and the replayer's own options (`mactl.capture.replayer.ReplayOptions`) take their
defaults from the constants here, so each default lives in one place.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from mactl.schema.capture import FileLog, KafkaLog
from mactl.schema.common import ClusterRef, Model, TransformSpec
from mactl.schema.executor import KubernetesExecutor, LocalExecutor

MAX_SPEEDUP_FACTOR = 1.0
MAX_THROUGHPUT_MBPS: float | None = None  # no limit
MAX_LAG_SECONDS = 5.0
LAG_WINDOW_SECONDS = 10.0
WORKERS = 4


class _ReplayWiring(Model):
    source: ClusterRef
    target: ClusterRef
    log: FileLog | KafkaLog = Field(default_factory=FileLog, discriminator="type")  # the capture's


class ReplayUserInputs(Model):
    """The replay inputs a user sets in `replayer-config`."""

    maxSpeedupFactor: PositiveFloat = MAX_SPEEDUP_FACTOR
    maxThroughputMbps: PositiveFloat | None = MAX_THROUGHPUT_MBPS
    transforms: list[TransformSpec] = []
    maxLagSeconds: PositiveFloat = MAX_LAG_SECONDS
    lagWindowSeconds: NonNegativeFloat = LAG_WINDOW_SECONDS
    follow: bool = False
    startPosition: dict[str, Any] | None = None
    timeoutSeconds: PositiveFloat = 3600.0
    workers: PositiveInt = WORKERS
    executor: LocalExecutor | KubernetesExecutor | None = Field(
        None,
        discriminator="type",
        description="Where the replayer runs: inside apply or a detached local process (unset or `type: local`), "
        "or the pods of a Kubernetes Job sharing the stage's consumer group (`type: kubernetes`, needs a kafka "
        "capture log; see docs/kubernetes.md).",
    )


class ReplayInputs(ReplayUserInputs, _ReplayWiring):
    """A replay stage's inputs: the options, and what mactl derives from the config."""
