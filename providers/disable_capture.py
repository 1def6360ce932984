"""The 'disable_capture' stage of the seed's idealized workflow.

Inputs schema and replacement rules only; apply/rollback land with the capture and
replay issue.
"""

from __future__ import annotations

from typing import ClassVar

from mactl.config.common import ClusterRef, Model
from mactl.providers.base import BaseProvider


class Inputs(Model):
    source: ClusterRef
    target: ClusterRef | None = None


class DisableCaptureProvider(BaseProvider):
    type = "disable_capture"
    Inputs: ClassVar = Inputs
    replace_on = frozenset({"source", "target"})
    available = False
