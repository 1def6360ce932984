"""What a person watching `mactl apply` sees: one line per running stage, live.

On a terminal a rich `Live` table shows each running stage with its progress, rate
(docs/s, or whatever unit the provider reports) and ETA; elsewhere (CI logs, pipes)
plain lines are printed when a stage starts and ends. It is one of the walk's hooks
(`mactl.apply.hooks`): it only displays, the walker decides everything.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table

from mactl.apply.hooks import Hook
from mactl.providers.base import Progress

VERB = {
    "create": ("Creating", "Creation complete"),
    "update": ("Updating", "Update complete"),
    "replace": ("Creating", "Creation complete"),
    "rollback": ("Rolling back", "Rollback complete"),
}


@dataclass
class _Running:
    address: str
    action: str
    started: float = field(default_factory=time.monotonic)
    first: tuple[float, float] | None = None
    last: Progress | None = None
    last_at: float = 0.0


def _fmt_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class ApplyDisplay(Hook):
    def __init__(self, console: Console | None = None, *, live: bool | None = None) -> None:
        self.console = console or Console(stderr=False, highlight=False, soft_wrap=True)
        self.live_enabled = self.console.is_terminal if live is None else live
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> ApplyDisplay:
        if self.live_enabled:
            self._live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    # -- the hook ---------------------------------------------------------------------

    def walk_started(self) -> None:
        self.__enter__()

    def walk_finished(self) -> None:
        self.__exit__(None, None, None)

    def stage_started(self, address: str, action: str) -> None:
        self.started(address, action)

    def stage_progress(self, address: str, report: Progress) -> None:
        self.progress(address, report)

    def stage_finished(self, address: str, outcome: str) -> None:
        self.finished(address, outcome)

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def started(self, address: str, action: str) -> None:
        with self._lock:
            self._running[address] = _Running(address, action)
        self.say(f"{address}: {VERB.get(action, ('Working', ''))[0]}...")
        self._refresh()

    def progress(self, address: str, report: Progress) -> None:
        now = time.monotonic()
        with self._lock:
            run = self._running.get(address)
            if run is None:
                return
            if run.first is None:
                run.first = (now, report.done)
            run.last, run.last_at = report, now
        self._refresh()

    def finished(self, address: str, outcome: str) -> None:
        with self._lock:
            run = self._running.pop(address, None)
        elapsed = _fmt_seconds(time.monotonic() - run.started) if run else "0s"
        done_verb = VERB.get(run.action if run else "", ("", "Done"))[1] or "Done"
        if outcome == "ok":
            self.say(f"{address}: {done_verb} after {elapsed}")
        else:
            self.say(f"{address}: {outcome} after {elapsed}")
        self._refresh()

    def rate_and_eta(self, address: str) -> tuple[float | None, float | None]:
        with self._lock:
            run = self._running.get(address)
            if run is None or run.first is None or run.last is None:
                return None, None
            t0, d0 = run.first
            dt = run.last_at - t0
            rate = (run.last.done - d0) / dt if dt > 0 else None
            eta = None
            if rate and rate > 0 and run.last.total is not None:
                eta = max(0.0, (run.last.total - run.last.done) / rate)
            return rate, eta

    def _table(self) -> Table:
        table = Table(box=None, show_header=True, header_style="bold")
        for column in ("stage", "elapsed", "progress", "rate", "ETA", ""):
            table.add_column(column)
        now = time.monotonic()
        with self._lock:
            running = list(self._running.values())
        for run in running:
            rate, eta = self.rate_and_eta(run.address)
            p = run.last
            done = ""
            if p is not None:
                done = f"{p.done:,.0f}/{p.total:,.0f} {p.unit}" if p.total is not None else f"{p.done:,.0f} {p.unit}"
            table.add_row(
                run.address,
                _fmt_seconds(now - run.started),
                done,
                f"{rate:,.0f} {p.unit}/s" if rate is not None and p is not None else "",
                _fmt_seconds(eta) if eta is not None else "",
                (p.message if p else "")[:60],
            )
        return table

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._table())
