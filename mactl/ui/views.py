"""What each console page shows, as plain data computed from the state, the stage files and the plan.

No HTML here (the templates draw it) and no state writes. Statuses come from the CLI's
own `mactl status` rows (`ConsoleSources.statuses`), progress from the walker's timeline
in the stage's folder (`Workdir`), secrets are masked with the state's masking rule.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mactl.audit import svg
from mactl.audit.render import LEDGER_HEADS
from mactl.graph.expand import StageGraph
from mactl.masking import mask_inputs, mask_text, mask_values
from mactl.state.document import HistoryEntry, StateDocument
from mactl.state.masking import mask_secrets
from mactl.state.workdir import Workdir
from mactl.ui.sources import StageRow

# The statuses the map colours, in the order a group takes the first one any member has.
STATUS_ORDER = (
    "failed",
    "tainted",
    "rolling_back",
    "running",
    "awaiting_approval",
    "complete_with_errors",
    "left_manual",
    "rolled_back",
    "pending",
    "complete",
)
STATUS_LABELS = {
    "pending": "planned",
    "running": "running",
    "complete": "complete",
    "complete_with_errors": "complete with errors",
    "failed": "failed",
    "tainted": "tainted",
    "awaiting_approval": "awaiting approval",
    "rolled_back": "rolled back",
    "left_manual": "left to you",
    "rolling_back": "rollback interrupted",
}


def shown_status(row: StageRow, rolled_back: set[str]) -> str:
    """The map's status of a stage: `mactl status`'s, and `rolled_back` for one the state forgot after undoing it."""
    if row.status == "pending" and row.address in rolled_back:
        return "rolled_back"
    return row.status


def rolled_back_addresses(doc: StateDocument | None) -> set[str]:
    """Stages whose last history entry undid them and that have no record any more."""
    if doc is None:
        return set()
    last: dict[str, HistoryEntry] = {}
    for entry in doc.history:
        if entry.address:
            last[entry.address] = entry
    # The walker records an undo as `<operation> rollback` (`apply rollback`, `destroy rollback`);
    # `state rm` only forgets a record, which undoes nothing.
    return {a for a, e in last.items() if a not in doc.stages and e.result == "ok" and e.operation.endswith("rollback")}


def group_status(counts: Mapping[str, int]) -> str:
    for status in STATUS_ORDER:
        if counts.get(status):
            return status
    return "pending"


@dataclass
class MapStatus:
    """What the map's live refresh gets: each node's status and counts, and each stage's."""

    serial: int
    nodes: dict[str, dict[str, Any]]
    stages: dict[str, str]
    pending_approvals: list[str]
    summary: dict[str, int]


def progress_text(p: Mapping[str, Any] | None) -> str:
    if not p:
        return ""
    done, total = p.get("done") or 0, p.get("total")
    head = f"{done:,.0f}/{total:,.0f} {p.get('unit', '')}" if total else f"{done:,.0f} {p.get('unit', '')}"
    return f"{head} {p.get('message', '')}".strip()


# -- the stage page -------------------------------------------------------------------


@dataclass
class Progress:
    """A stage's progress from its timeline: the last report, the rate over the last stretch, an ETA."""

    text: str
    rate: float | None  # units per second
    unit: str
    eta_s: float | None
    plot_svg: str | None


def read_timeline(path: Path, limit: int = 5000) -> list[dict[str, Any]]:
    """The walker's progress lines for a stage (the last `limit`); a torn last line is skipped."""
    try:
        lines = path.read_bytes().splitlines()[-limit:]
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("at"), (int, float)):
            out.append(item)
    return out


def progress_of(timeline: Sequence[Mapping[str, Any]], running: bool) -> Progress | None:
    """Rate between consecutive reports of the current run (after its last restart), and an ETA."""
    if not timeline:
        return None
    start = max((i for i, p in enumerate(timeline) if p.get("message") in ("apply", "rollback")), default=0)
    run = [p for p in timeline[start:] if isinstance(p.get("done"), (int, float))]
    last = timeline[-1]
    points: list[list[float]] = []
    for a, b in zip(run, run[1:], strict=False):
        dt = float(b["at"]) - float(a["at"])
        if dt > 0 and b["done"] >= a["done"]:
            points.append([float(b["at"]) - float(run[0]["at"]), (float(b["done"]) - float(a["done"])) / dt])
    rate = None
    if len(run) >= 2:
        span = float(run[-1]["at"]) - float(run[0]["at"])
        if span > 0:
            rate = (float(run[-1]["done"]) - float(run[0]["done"])) / span
    total, done = last.get("total"), last.get("done") or 0
    eta = (float(total) - float(done)) / rate if running and rate and total is not None and total >= done else None
    unit = str(last.get("unit") or "")
    plot = svg.lines(f"{unit or 'units'}/s over time", [(unit or "rate", points)], f"{unit}/s") if points else None
    return Progress(progress_text(last), rate, unit, eta, plot)


@dataclass
class StagePage:
    address: str
    type: str
    status: str
    row: StageRow | None
    inputs: str  # JSON, masked
    outputs: str  # JSON, masked
    ledger: list[dict[str, Any]]
    dead_letter_reasons: dict[str, int]
    progress: Progress | None
    last_error: str | None
    history: list[HistoryEntry]
    redo: str
    undo: str
    depends_on: list[str]
    dependents: list[str]
    approval_required: bool
    waiting: bool
    log_tail: str
    items: list[dict[str, str]] = field(default_factory=list)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - limit))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def ledger_table(ledger: Mapping[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The ledger's rows per index, and dead-letter counts by reason over every index."""
    rows: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    for index, row in sorted((ledger or {}).items()):
        if not isinstance(row, Mapping):
            continue
        cells = {key: int(row.get(key, 0) or 0) for key, _ in LEDGER_HEADS}
        by_reason = row.get("deadLetterReasons") or {}
        for reason, n in by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + int(n)
        rows.append({"index": index, **cells, "reasons": dict(by_reason)})
    return rows, dict(sorted(reasons.items(), key=lambda kv: -kv[1]))


def metadata_items(outputs: Mapping[str, Any] | None, limit: int = 500) -> list[dict[str, str]]:
    """A metadata stage's items (index, template, pipeline…) and what became of each, from its recorded report."""
    report = (outputs or {}).get("report")
    items = report.get("items") if isinstance(report, Mapping) else None
    out = []
    for item in (items or [])[:limit]:
        if isinstance(item, Mapping):
            out.append(
                {
                    "kind": str(item.get("kind", "")),
                    "name": str(item.get("name", "")),
                    "outcome": str(item.get("outcome", "")),
                    "reason": str(item.get("reason") or ""),
                }
            )
    return out


def stage_page(
    address: str,
    graph: StageGraph,
    doc: StateDocument | None,
    row: StageRow | None,
    workdir: Path,
    sensitive_values: set[str],
    cli_args: str,
    rolled_back: set[str],
) -> StagePage:
    stage = graph.stages.get(address)
    record = doc.stages.get(address) if doc is not None else None
    if stage is None and record is None:
        raise KeyError(address)
    # Recorded inputs were masked on the way into the state; the config's are masked here the same way.
    # (a stage stopped at its gate has a record but no applied inputs yet: the config's are shown)
    # Everything shown is masked again here, by key and by the config's sensitive values, so a
    # value that slipped past the state's own guard is still never shown.
    if record is not None and (record.inputs or stage is None):
        inputs: Any = mask_values(mask_secrets(record.inputs)[0], sensitive_values)
    else:
        assert stage is not None
        inputs = mask_inputs(stage.inputs, stage.sensitive_paths, sensitive_values)
    outputs = mask_values(mask_secrets(record.outputs)[0], sensitive_values) if record is not None else {}
    files = Workdir(workdir).stage(address)
    status = shown_status(row, rolled_back) if row is not None else (record.status if record else "pending")
    ledger_rows, reasons = ledger_table(row.ledger if row is not None else None)
    last_error = record.last_error if record is not None else None
    if last_error:
        last_error = mask_text(last_error, sensitive_values)
    history = [
        e.model_copy(update={"detail": mask_text(e.detail, sensitive_values)}) if e.detail else e
        for e in (doc.history if doc else [])
        if e.address == address
    ]
    quoted = shlex.quote(address)
    dependents = sorted(a for a, s in graph.stages.items() if address in s.depends_on)
    return StagePage(
        address=address,
        type=stage.type if stage else (record.type if record else "?"),
        status=status,
        row=row,
        inputs=_json(inputs),
        outputs=_json(outputs),
        ledger=ledger_rows,
        dead_letter_reasons=reasons,
        progress=progress_of(read_timeline(files.progress), status == "running"),
        last_error=last_error,
        history=list(reversed(history[-50:])),
        redo=f"mactl apply {cli_args} -replace {quoted}".replace("  ", " "),
        undo=f"mactl destroy {cli_args} -target {quoted}".replace("  ", " "),
        depends_on=sorted(stage.depends_on if stage else (record.depends_on if record else [])),
        dependents=dependents,
        approval_required=bool(stage and stage.approval_required),
        waiting=status == "awaiting_approval" and not (record is not None and record.approved_by),
        log_tail=mask_text(_tail(files.log), sensitive_values),
        items=metadata_items(outputs),
    )


def when(text: str | None) -> str:
    """An ISO time as `2026-12-04 21:08:05 UTC`."""
    if not text:
        return ""
    try:
        return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return text
