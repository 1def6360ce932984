"""The walk as machine-readable events: the hook behind `apply -json` and `destroy -json`.

`apply_start` when a stage starts, `apply_progress` at most once a second per stage (and
for its last report) with the done/total, the rate per second (docs/s for a backfill) and
an ETA, `apply_complete` or `apply_errored` (followed by an error `diagnostic`) when it
ends. Lines a person would read (`say`) become `log` events. Written through
`mactl.plan.events.EventStream`, which masks and flushes every line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mactl.apply.hooks import Hook
from mactl.plan.events import EventStream, stage_ref
from mactl.providers.base import Progress

PROGRESS_INTERVAL = 1.0  # seconds between two progress events of one stage


@dataclass
class _Running:
    action: str
    started: float
    last_emitted: float = 0.0
    last_done: float | None = None
    first_done: float | None = None
    first_at: float = field(default=0.0)


class JsonEventsHook(Hook):
    """Turns the walker's hook calls into `apply_*` events; `types` maps an address to its stage type."""

    def __init__(self, stream: EventStream, types: Mapping[str, str]) -> None:
        self.stream = stream
        self.types = types
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}

    def _hook(self, address: str, action: str, **fields: object) -> dict[str, object]:
        return {"stage": stage_ref(address, self.types.get(address)), "action": action, **fields}

    def stage_started(self, address: str, action: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._running[address] = _Running(action, now)
        verb = "Rolling back" if action == "rollback" else f"{action.capitalize()}: starting"
        self.stream.emit("apply_start", f"{address}: {verb}...", hook=self._hook(address, action))

    def stage_progress(self, address: str, report: Progress) -> None:
        now = time.monotonic()
        final = report.total is not None and report.done >= report.total
        with self._lock:
            run = self._running.get(address)
            if run is None:
                return
            if run.first_done is None:
                run.first_done, run.first_at = report.done, now
            first_done = run.first_done
            recent = now - run.last_emitted < PROGRESS_INTERVAL
            if recent and (not final or report.done == run.last_done):
                return  # at most one a second; the last report once, even if said twice
            run.last_emitted, run.last_done = now, report.done
            elapsed = now - run.started
            # The rate counts from the first report, not from the start: a backfill spends
            # its first seconds planning work units, which would drag the rate down.
            span = now - run.first_at
            rate = (report.done - first_done) / span if span > 0 and report.done > first_done else None
        eta = (report.total - report.done) / rate if rate and report.total is not None else None
        unit = report.unit or "items"
        hook = self._hook(
            address,
            run.action,
            done=report.done,
            total=report.total,
            unit=report.unit,
            per_second=round(rate, 1) if rate is not None else None,
            eta_seconds=round(max(0.0, eta), 1) if eta is not None else None,
            elapsed_seconds=round(elapsed, 1),
            message=report.message,
        )
        of = f"/{report.total}" if report.total is not None else ""
        speed = f", {rate:.0f} {unit}/s" if rate is not None else ""
        self.stream.emit("apply_progress", f"{address}: {report.done}{of} {unit}{speed}", hook=hook)

    def stage_finished(self, address: str, outcome: str) -> None:
        with self._lock:
            run = self._running.pop(address, None)
        action = run.action if run is not None else "apply"
        elapsed = round(time.monotonic() - run.started, 1) if run is not None else None
        hook = self._hook(address, action, elapsed_seconds=elapsed)
        if outcome == "ok":
            done = "Rollback complete" if action == "rollback" else f"{action.capitalize()} complete"
            self.stream.emit("apply_complete", f"{address}: {done} after {elapsed}s", hook=hook)
            return
        message = outcome.removeprefix("FAILED: ")
        self.stream.emit("apply_errored", f"{address}: {action} errored after {elapsed}s", level="error", hook=hook)
        self.stream.diagnostic("error", message, address=address)

    def say(self, text: str) -> None:
        self.stream.emit("log", text)
