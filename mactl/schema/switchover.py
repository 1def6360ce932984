"""Inputs of the `switchover` stage: swing the capture proxies to the target."""

from __future__ import annotations

from mactl.schema.common import ClusterRef, Model


class SwitchoverInputs(Model):
    source: ClusterRef
    target: ClusterRef | None = None
    proxies: list[str] = []  # proxy URLs; default: the capture stage's proxies
