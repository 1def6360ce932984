"""Inputs of the `disable_capture` stage: tell the capture proxies to stop recording."""

from __future__ import annotations

from mactl.schema.common import ClusterRef, Model


class DisableCaptureInputs(Model):
    source: ClusterRef
    target: ClusterRef | None = None
    proxies: list[str] = []  # proxy URLs; default: the capture stage's proxies
