"""The machine-readable UI: `-json` on plan, apply and destroy, one JSON event per line.

Modelled on Terraform's machine-readable UI (`terraform plan -json`): every line is one
object with `@level`, `@message`, `@module`, `@timestamp` and a `type`, written and flushed
as it happens, so a script (or CI log viewer) can follow a long apply. mactl's unit is the
stage, so where Terraform says `resource` an event says `stage` (`{"addr", "type"}`); the
address is whatever the plan's change carries, so instance addresses such as
`metadata.es.snap.os2.m0["rw-pmc"]` pass through unchanged.

This module writes the plan's events (`version`, `planned_change`, `change_summary`,
`diagnostic`); the walk's events (`apply_start`, `apply_progress`, `apply_complete`,
`apply_errored`) come from `mactl.apply.json_hook`, through the same `EventStream`.
The format is documented in `docs/json-ui.md`.

Extension point: `planned_change.change.action` is the change's own action name, so a new
kind of plan action (import, move, remove) appears in the stream without a new event
type; an event type that fits none of these is written with `EventStream.emit(type, ...)`
and listed in `EVENT_TYPES` (the docs test reads that list).

Every string passes the same masking as the state (`mactl.masking.mask_values`) before it
is written: plan values are already masked, but messages from providers and errors are not.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from mactl import __version__
from mactl.masking import mask_values
from mactl.plan.definition import Change, Plan
from mactl.state.masking import mask_secrets

UI_VERSION = "1.0"
MODULE = "mactl.ui"

EVENT_TYPES: tuple[str, ...] = (
    "version",
    "diagnostic",
    "planned_change",
    "change_summary",
    "apply_start",
    "apply_progress",
    "apply_complete",
    "apply_errored",
    "apply_stopped",
    "log",
)

# The words of Terraform's `change_summary` next to mactl's own counts: `add` is a create,
# `change` an update, `remove` a roll-back (a replace counts in both, as Terraform does).
_SUMMARY_ACTIONS = ("create", "update", "replace", "rollback", "read")


class EventStream:
    """Writes events to `out`, one line each, flushed at once; thread-safe (stages run in threads)."""

    def __init__(self, out: TextIO, secrets: Collection[str] = ()) -> None:
        self.out = out
        self.secrets = [s for s in secrets if s]
        self._lock = threading.Lock()

    def emit(self, type_: str, message: str, *, level: str = "info", **fields: Any) -> None:
        event: dict[str, Any] = {
            "@level": level,
            "@message": message,
            "@module": MODULE,
            "@timestamp": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            **fields,
            "type": type_,
        }
        event = mask_values(event, self.secrets) if self.secrets else event
        line = orjson.dumps(mask_secrets(event)[0]).decode() + "\n"
        with self._lock:
            self.out.write(line)
            self.out.flush()

    # -- events of every command --------------------------------------------------------

    def version(self) -> None:
        self.emit("version", f"mactl {__version__}", mactl=__version__, ui=UI_VERSION)

    def diagnostic(
        self, severity: str, summary: str, detail: str = "", *, address: str | None = None, path: str | None = None
    ) -> None:
        """An error or a warning. `path` is the config path or file it is about, when known."""
        body: dict[str, Any] = {"severity": severity, "summary": summary, "detail": detail}
        if address is not None:
            body["address"] = address
        if path is not None:
            body["path"] = path
        level = "error" if severity == "error" else "warn"
        label = "Error" if severity == "error" else "Warning"
        self.emit("diagnostic", f"{label}: {summary}", level=level, diagnostic=body)

    # -- the plan -------------------------------------------------------------------------

    def plan(self, plan: Plan, operation: str) -> None:
        """Every planned change (no-ops left out, as Terraform does), then the summary."""
        for warning in plan.warnings:
            self.diagnostic("warning", warning)
        for change in plan.changes:
            if change.action != "noop":
                self.planned_change(change)
        self.change_summary(plan.counts(), operation, plan.summary_line())

    def planned_change(self, change: Change) -> None:
        body: dict[str, Any] = {
            "stage": stage_ref(change.address, change.type),
            "action": change.action,
            "reason": change.reason,
            "attributes": [
                {"path": a.path, "before": a.before, "after": a.after, "forces_replacement": a.forces_replacement}
                for a in change.attributes
            ],
        }
        if change.approval_required:
            body["approval_required"] = True
        if change.resume:
            body["resume"] = True
        if change.manual_rollback and change.rolls_back:
            body["manual_rollback"] = True
        self.emit("planned_change", f"{change.address}: plan to {change.action}", change=body)

    def change_summary(self, counts: Mapping[str, int], operation: str, message: str, *, ok: bool = True) -> None:
        """The counts of a plan (`operation: plan`), or of what an apply or destroy did.

        `ok` is false when the walk stopped (a failure, an interrupt, a lost lock): the
        counts are then what was done before it stopped, and the level is `error`.
        """
        changes: dict[str, Any] = {a: counts.get(a, 0) for a in _SUMMARY_ACTIONS}
        changes["add"] = changes["create"] + changes["replace"]
        changes["change"] = changes["update"]
        changes["remove"] = changes["rollback"] + changes["replace"]
        changes["operation"] = operation
        changes["ok"] = ok
        self.emit("change_summary", message, level="info" if ok else "error", changes=changes)


def stage_ref(address: str, type_: str | None) -> dict[str, Any]:
    """What Terraform calls the `resource` of an event: the stage's address and type."""
    return {"addr": address, "type": type_}
