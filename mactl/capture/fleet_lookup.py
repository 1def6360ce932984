"""How the late stages (switchover, disable_capture, teardown) find the capture fleet.

In order: proxy URLs named in the stage's own inputs; the `proxies` of any upstream
stage's outputs (the capture stage's); the fleet registry the capture stage wrote for
this source in the state's working directory.
"""

from __future__ import annotations

from typing import Any

from mactl.capture import fleet
from mactl.errors import ProviderError
from mactl.schema.stage import StageView


def find_proxies(ctx: StageView, source_name: str, explicit: list[str]) -> list[dict[str, Any]]:
    if explicit:
        return [{"id": url, "url": url.rstrip("/")} for url in explicit]
    for outputs in ctx.upstream.values():
        if outputs and outputs.get("proxies"):
            return list(outputs["proxies"])
    found = fleet.read_registry(ctx.workdir, source_name).get("proxies") or []
    if not found:
        raise ProviderError(
            f"{ctx.address}: no capture proxies found for source '{source_name}'",
            hint="apply the capture stage first, or list proxy URLs in this stage's `proxies` input",
        )
    return list(found)


def find_log(ctx: StageView, source_name: str) -> dict[str, Any] | None:
    for outputs in ctx.upstream.values():
        if outputs and isinstance(outputs.get("log"), dict) and "type" in outputs["log"]:
            return dict(outputs["log"])
    return fleet.read_registry(ctx.workdir, source_name).get("log")
