"""The 'disable_capture' stage of the seed's idealized workflow: stop recording.

Each capture proxy is told `POST /__mactl/capture/stop`; the proxies keep forwarding
traffic (to wherever they route), they just stop writing to the capture log. Rollback
tells them to record again.
"""

from __future__ import annotations

from typing import Any

from mactl.providers.base import BaseProvider, StageContext

from mactl.schema.disable_capture import DisableCaptureInputs

Context = StageContext[DisableCaptureInputs]


class DisableCaptureProvider(BaseProvider[DisableCaptureInputs]):
    type = "disable_capture"
    Inputs = DisableCaptureInputs
    replace_on = frozenset({"source", "target"})
    available = True

    def apply(self, ctx: Context) -> dict[str, Any]:
        from mactl.capture import fleet
        from mactl.capture.fleet_lookup import find_proxies

        inputs = ctx.inputs
        stopped = []
        for p in find_proxies(ctx, inputs.source.name, inputs.proxies):
            doc = fleet.control(p["url"], "capture/stop")
            stopped.append({"id": p.get("id"), "url": p["url"], "recordsWritten": doc.get("recordsWritten")})
        return {"proxies": stopped, "capturing": False}

    def rollback(self, ctx: Context) -> None:
        from mactl.capture import fleet
        from mactl.capture.fleet_lookup import find_proxies

        inputs = ctx.inputs
        for p in find_proxies(ctx, inputs.source.name, inputs.proxies):
            fleet.control(p["url"], "capture/start")
