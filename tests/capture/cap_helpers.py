"""Helpers for the capture/replay tests: an in-process capture proxy, a real StageContext.

A module with a unique name (not `conftest`) so tests can import it whatever else the
whole suite has put on `sys.path`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mactl.providers.base import StageContext

from mactl.capture import log as capture_log
from mactl.capture.proxy import CaptureProxy, Filters, Upstream, serve
from mactl.capture.record import Record, decode


def read_records(cfg: dict[str, Any]) -> list[Record]:
    """Every record in a capture log, in log order (one partition: the proxy's)."""
    reader = capture_log.open_reader(cfg, "check")
    reader.seek({})
    out: list[Record] = []
    while batch := reader.poll(1000, 0.05):
        out.extend(decode(e.payload) for e in batch)
    reader.close()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningProxy:
    proxy: CaptureProxy
    url: str
    log: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    task: Any

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=10)
        if self.proxy.writer is not None:
            self.proxy.writer.close()


def start_proxy(
    source_url: str,
    log_cfg: dict[str, Any],
    *,
    filters: Filters | None = None,
    proxy_id: str = "cap-test",
    capturing: bool = False,
    state_file: Path | None = None,
) -> RunningProxy:
    port = free_port()
    capture_log.init_log(log_cfg)
    writer = capture_log.open_writer(log_cfg, proxy_id)
    proxy = CaptureProxy(
        Upstream.parse(source_url),
        writer,
        proxy_id=proxy_id,
        filters=filters,
        log_description=capture_log.describe(log_cfg),
        capturing=capturing,
        state_file=state_file,
    )
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        ev = asyncio.Event()

        async def main() -> None:
            holder["task"] = asyncio.ensure_future(serve(proxy, "127.0.0.1", port, ev))
            await ev.wait()
            ready.set()
            try:
                await holder["task"]
            except asyncio.CancelledError:
                pass

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "proxy did not start"
    return RunningProxy(proxy, f"http://127.0.0.1:{port}", log_cfg, loop, thread, holder["task"])


def stage_context(
    address: str,
    type_: str,
    inputs: Any,
    workdir: Path,
    *,
    upstream: dict[str, Any] | None = None,
    prior: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
    messages: list[str] | None = None,
) -> StageContext:
    """A real StageContext as the apply walker builds it, for calling providers directly."""
    sink = messages if messages is not None else []
    saved: dict[str, Any] = {}
    ctx = StageContext(
        address=address,
        type=type_,
        inputs=inputs,
        prior_outputs=prior,
        upstream=upstream or {},
        checkpoint_data=checkpoint,
        workdir=workdir,
        progress=lambda p: sink.append(f"progress: {p.message}"),
        checkpoint=lambda d: saved.update(d),
        log=sink.append,
    )
    ctx.saved_checkpoint = saved  # type: ignore[attr-defined]
    return ctx
