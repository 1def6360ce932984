"""`mactl status [--watch] [--json]` (the workflow map) and `mactl audit [ADDR]` (the report).

Both only read: the config (for the graph) and the state (without taking the lock), plus
the progress lines the apply walker leaves in each stage's working folder. Neither talks
to a cluster. `mactl graph --state` (in `config_cmd`) draws the same statuses as mermaid.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mactl.cli.app import app
from mactl.cli.config_cmd import ConfigPathOpt, NoPythonTransformsOpt, VarFileOpt, VarOpt
from mactl.errors import ConfigError
from mactl.state.document import ERRORS_OUTPUT_KEY
from mactl.state.workdir import Workdir

if TYPE_CHECKING:
    from mactl.graph.expand import StageGraph
    from mactl.state.document import StateDocument


@dataclass
class StageStatus:
    """One row of the workflow map."""

    address: str
    type: str
    status: str
    clone_of: str | None
    depends_on: list[str]
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    attempts: int
    progress: dict[str, Any] | None
    last_error: str | None
    approval: str | None  # "pending" (waiting for `mactl approve`), "approved by WHO", or None
    in_config: bool
    # a backfill's document ledger per source index (live = written + deadLettered + …), when recorded
    ledger: dict[str, Any] | None = None
    errors: str | None = None  # the summary of a `complete_with_errors` stage


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    try:
        t0 = datetime.fromisoformat(start)
        t1 = datetime.fromisoformat(end) if end else datetime.now(t0.tzinfo)
    except ValueError:
        return None
    return round((t1 - t0).total_seconds(), 1)


def _last_progress(workdir: Path, address: str) -> dict[str, Any] | None:
    path = Workdir(workdir).stage(address).progress
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def collect(graph: StageGraph, doc: StateDocument | None, workdir: Path) -> list[StageStatus]:
    """Every stage of the graph in order, then stages only the state knows (to be rolled back)."""
    recorded = dict(doc.stages) if doc is not None else {}
    rows: list[StageStatus] = []
    for address in [*graph.topological(), *sorted(set(recorded) - set(graph.stages))]:
        stage = graph.stages.get(address)
        rec = recorded.get(address)
        status = rec.status if rec is not None else "pending"
        approval = None
        needs = bool(stage and stage.approval_required)
        if rec is not None and rec.approved_by:  # approved, waiting for the next apply to run it
            approval = f"approved by {rec.approved_by}"
        elif status == "awaiting_approval" or (needs and rec is None):
            approval = "pending"
        progress = (
            _last_progress(workdir, address)
            if status in ("running", "failed", "complete", "complete_with_errors", "tainted")
            else None
        )
        outputs = (rec.outputs or {}) if rec is not None else {}
        ledger = outputs.get("ledger") if isinstance(outputs.get("ledger"), dict) else None
        errors = outputs.get(ERRORS_OUTPUT_KEY)
        rows.append(
            StageStatus(
                address=address,
                type=stage.type if stage else (rec.type if rec else "?"),
                status=status,
                clone_of=stage.clone_of if stage else None,
                depends_on=list(stage.depends_on if stage else (rec.depends_on if rec else [])),
                started_at=rec.started_at if rec else None,
                finished_at=rec.finished_at if rec else None,
                duration_s=_seconds(rec.started_at, rec.finished_at) if rec else None,
                attempts=rec.attempts if rec else 0,
                progress=progress,
                last_error=rec.last_error if rec else None,
                approval=approval,
                in_config=stage is not None,
                ledger=ledger,
                errors=str(errors.get("summary")) if isinstance(errors, dict) else None,
            )
        )
    return rows


_STYLE = {
    "complete": "green",
    "complete_with_errors": "yellow",
    "running": "cyan",
    "failed": "red",
    "tainted": "yellow",
    "awaiting_approval": "magenta",
    "pending": "dim",
    "left_manual": "yellow",
    "rolling_back": "red",
}


def _progress_text(p: dict[str, Any] | None) -> str:
    if not p:
        return ""
    done, total = p.get("done"), p.get("total")
    head = f"{done:.0f}/{total:.0f} {p.get('unit', '')}" if total else f"{done:.0f} {p.get('unit', '')}"
    return f"{head} {p.get('message', '')}".strip()


def _table(rows: list[StageStatus], where: str) -> Any:
    from rich.table import Table

    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    table = Table(title=f"mactl status: {len(rows)} stages ({summary}); state: {where}", title_justify="left")
    cells: list[tuple[str, str, str, str, str, str]] = []
    for r in rows:
        name = (
            r.address
            + (f"  (clone of {r.clone_of})" if r.clone_of else "")
            + ("" if r.in_config else "  (not in config)")
        )
        took = f"{r.duration_s:.1f}s" if r.duration_s is not None else ""
        error = (r.last_error or "").splitlines()[0][:120] if r.last_error else (r.errors or "")[:200]
        status = f"[{_STYLE.get(r.status, 'white')}]{r.status}[/]"
        cells.append((name, status, took, _progress_text(r.progress), r.approval or "", error))
    # Columns nobody has a value in are left out: on an 80-column terminal the room goes to
    # the stage addresses (never wrapped: they are what a reader copies) and the progress.
    heads = ("stage", "status", "time", "progress", "approval", "last error")
    shown = [i for i, head in enumerate(heads) if i < 2 or any(row[i] for row in cells)]
    for i in shown:
        table.add_column(heads[i], overflow="fold", no_wrap=i in (0, 1, 2))
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    ledgers = [r for r in rows if r.ledger]
    if not ledgers:
        return table
    from rich.console import Group

    return Group(table, *(_ledger_table(r.address, r.ledger or {}) for r in ledgers))


LEDGER_TERMS = (
    ("written", "written"),
    ("deadLettered", "dead-lettered"),
    ("skippedBySampling", "sampled out"),
    ("droppedByTransform", "dropped by a transform"),
    ("notMigratable", "not migratable"),
)


def _ledger_table(address: str, ledger: dict[str, Any]) -> Any:
    """A backfill's document ledger, one line an index, as the sum it must be:
    `demo-products  1,005 live = 1,000 written + 5 dead-lettered (mapper_parsing_exception 5)`.

    Only the columns a document landed in are written out, so the line stays readable on an
    80-column terminal; a count in no column is shown in red as unaccounted."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from mactl.backfill.verify import top_reasons

    table = Table(
        show_header=False,
        box=None,
        pad_edge=False,
    )
    table.add_column("index", no_wrap=True)
    table.add_column("live", justify="right", no_wrap=True)
    table.add_column("where they went", overflow="fold")
    for index, row in sorted(ledger.items()):
        live = int(row.get("live", 0) or 0)
        terms = [(int(row.get(key, 0) or 0), words) for key, words in LEDGER_TERMS]
        shown = [(n, words) for n, words in terms if n] or [(0, "written")]
        sum_text = Text("= ")
        for i, (n, words) in enumerate(shown):
            if i:
                sum_text.append(" + ")
            sum_text.append(f"{n:,} {words}", style="red" if words == "dead-lettered" else "")
        reasons = top_reasons(row)
        if reasons:
            sum_text.append(f" ({reasons})")
        missing = int(row.get("unaccounted", 0) or 0)
        if missing:
            sum_text.append(f"; {missing:,} unaccounted", style="bold red")
        table.add_row(index, f"{live:,} live", sum_text)
    title = Text(f"document ledger of {address}", style="bold")
    title.append(" (live top-level documents in the snapshot, and where each went)", style="dim")
    return Group(title, table)


def _status_json(rows: list[StageStatus], where: str, workspace: str) -> str:
    pending = [r.address for r in rows if r.approval == "pending"]
    return (
        json.dumps(
            {"state": where, "workspace": workspace, "pendingApprovals": pending, "stages": [asdict(r) for r in rows]},
            indent=2,
        )
        + "\n"
    )


def _open(config: Path | None, var: list[str] | None, var_file: list[Path] | None) -> tuple[Any, Any, Any]:
    from mactl.cli.config_cmd import expand_named, load_from_options
    from mactl.state import open_backend

    loaded = load_from_options(config, var, var_file)
    graph = expand_named(loaded)
    backend = open_backend(loaded.config.state, base_dir=loaded.base_dir)
    return loaded, graph, backend


@app.command("status")
def status_command(
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    watch: Annotated[
        bool, typer.Option("-watch", "--watch", help="Redraw every INTERVAL seconds until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float, typer.Option("-interval", "--interval", help="Seconds between redraws with --watch.", min=0.2)
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("-json", "--json", help="Print the map as JSON (for scripts).")] = False,
) -> None:
    """Show every stage: status, timing, progress, last error, and pending approvals.

    Reads the state without taking its lock, so it works while `mactl apply` runs (in another terminal, with --watch).
    """
    if watch and as_json:
        raise ConfigError("--watch and --json: give one of them")
    _loaded, graph, backend = _open(config, var, var_file)

    def snapshot() -> list[StageStatus]:
        return collect(graph, backend.read(), backend.workdir)

    if as_json:
        typer.echo(_status_json(snapshot(), backend.describe(), backend.workspace), nl=False)
        return
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not watch:
        console.print(_table(snapshot(), backend.describe()))
        return
    try:
        if not console.is_terminal:
            # Rich's Live draws nothing into a pipe until it stops; a log or `tee` reader
            # wants each redraw as it happens, so print one table after another instead.
            while True:
                console.print(_table(snapshot(), backend.describe()))
                console.file.flush()
                time.sleep(interval)
        with Live(_table(snapshot(), backend.describe()), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(interval)
                live.update(_table(snapshot(), backend.describe()))
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends: not an error


@app.command("audit")
def audit_command(
    address: Annotated[
        str | None, typer.Argument(help="A validate stage (default: every validate stage).", metavar="[ADDR]")
    ] = None,
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    as_json: Annotated[bool, typer.Option("-json", "--json", help="Print the full report as JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("-markdown", "--markdown", help="Print the report as markdown (a PR comment).")
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "-html",
            "--html",
            help="Write a self-contained HTML page with plots to FILE.",
            dir_okay=False,
            metavar="FILE",
        ),
    ] = None,
) -> None:
    """Show the validation report the validate stage(s) recorded in the state.

    Nothing is re-run: the report is the one the last apply recorded (also when it failed). Exits 0 when every report passed, 1 otherwise.
    """
    from mactl.audit import render_html, render_json, render_markdown, render_text, reports_from_state

    if sum([as_json, markdown]) > 1:
        raise ConfigError("--json and --markdown: give one of them")
    _loaded, _graph, backend = _open(config, var, var_file)
    reports = reports_from_state(backend.read(), address)
    if html is not None:
        try:
            # The report quotes documents (sample mismatches): readable by its owner only.
            with os.fdopen(os.open(html, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
                fh.write(render_html(reports))
        except OSError as exc:
            raise ConfigError(f"--html: cannot write {html}: {exc.strerror}") from None
    if as_json:
        typer.echo(render_json(reports), nl=False)
    elif markdown:
        typer.echo(render_markdown(reports), nl=False)
    else:
        typer.echo(render_text(reports), nl=False)
        if html is not None:
            typer.echo(f"HTML report: {html.resolve()}")
    raise typer.Exit(0 if all(r["passed"] for r in reports) else 1)
