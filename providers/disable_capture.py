"""The 'disable_capture' stage of the seed's idealized workflow: stop recording.

Each capture proxy is told `POST /__mactl/capture/stop`; the proxies keep forwarding
traffic (to wherever they route), they just stop writing to the capture log. Rollback
tells them to record again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mactl.providers.base import BaseProvider, StageContext

from mactl.config.common import ClusterRef, Model


class Inputs(Model):
    source: ClusterRef
    target: ClusterRef | None = None
    proxies: list[str] = []  # proxy URLs; default: the capture stage's proxies


class DisableCaptureProvider(BaseProvider):
    type = "disable_capture"
    Inputs: ClassVar = Inputs
    replace_on = frozenset({"source", "target"})
    available = True

    def apply(self, ctx: StageContext) -> dict[str, Any]:
        from mactl.capture import fleet
        from mactl.capture.fleet_lookup import find_proxies

        inputs: Inputs = ctx.inputs  # type: ignore[assignment]
        stopped = []
        for p in find_proxies(ctx, inputs.source.name, inputs.proxies):
            doc = fleet.control(p["url"], "capture/stop")
            stopped.append({"id": p.get("id"), "url": p["url"], "recordsWritten": doc.get("recordsWritten")})
        return {"proxies": stopped, "capturing": False}

    def rollback(self, ctx: StageContext) -> None:
        from mactl.capture import fleet
        from mactl.capture.fleet_lookup import find_proxies

        inputs: Inputs = ctx.inputs  # type: ignore[assignment]
        for p in find_proxies(ctx, inputs.source.name, inputs.proxies):
            fleet.control(p["url"], "capture/start")
