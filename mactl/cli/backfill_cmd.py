"""`mactl worker ADDR` and `mactl backfill resend-failed ADDR [--transform FILE]`.

Both load the same config as `apply`, find the backfill stage ADDR in the expanded graph
and read what `apply` recorded for it in the state (the working-state index, the
dead-letter location, the snapshot's outputs). A worker never writes the state: its
progress lives in the stage's lease documents, which `apply` watches. `resend-failed`
runs under the state lock and enters what it did in the stage's books and the history.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.console import Console
from rich.live import Live

from mactl.cli.app import app
from mactl.cli.config_cmd import (
    ConfigPathOpt,
    NoPythonTransformsOpt,
    VarFileOpt,
    VarOpt,
    find_stage,
    load_from_options,
    lock_state,
)
from mactl.config.loader import LoadedConfig
from mactl.errors import ConfigError, StateError
from mactl.schema.backfill import BackfillInputs
from mactl.state.workdir import Workdir

if TYPE_CHECKING:
    from mactl.backfill.resend import ResendResult
    from mactl.state.document import StateDocument

backfill_app = typer.Typer(help="Backfill (RFS) helpers: resend dead-lettered documents.", no_args_is_help=True)
app.add_typer(backfill_app, name="backfill")

WorkspaceOpt = typer.Option(None, "--workspace", help="The state workspace (default: the selected one).")
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")
LockTimeoutOpt = typer.Option(
    "0s", "-lock-timeout", "--lock-timeout", help="How long to wait for the state lock (e.g. 30s, 5m)."
)


@dataclass
class BackfillStage:
    """A backfill stage of the config and what `apply` recorded for it (read, never written)."""

    inputs: BackfillInputs
    record: Any  # its state record, None before its first apply
    doc: Any  # the whole state document (None for an empty state): upstream records
    loaded: LoadedConfig
    backend: Any

    @property
    def checkpoint(self) -> dict[str, Any]:
        """What `apply` checkpointed for the stage (workdir, dead-letter location); {} if nothing."""
        return (self.record.checkpoint or {}) if self.record is not None else {}

    def snapshot_name(self) -> str:
        """The snapshot the stage reads: what the snapshot stage recorded, else the config's name."""
        if self.record is not None:
            for dep in self.record.depends_on:
                upstream = self.doc.stages.get(dep)
                if upstream is not None and upstream.type == "snapshot" and upstream.outputs.get("name"):
                    return str(upstream.outputs["name"])
        return self.inputs.snapshotName


def _load_backfill_stage(
    address: str, config: Path | None, var: list[str] | None, var_file: list[Path] | None, workspace: str | None
) -> BackfillStage:
    """Find the backfill stage ADDR in the config and read its state record, as `apply` left it."""
    from mactl.cli.config_cmd import expand_named
    from mactl.state import open_backend

    loaded = load_from_options(config, var, var_file)
    backend = open_backend(loaded.config.state, workspace, base_dir=loaded.base_dir)
    doc = backend.read()
    # The snapshot's name as this state took it is read from its record (`snapshot_name`).
    stage = find_stage(expand_named(loaded, backend.workspace), address, "backfill", none_hint="backfill stages: none")
    inputs = BackfillInputs.model_validate(stage.inputs)
    record = doc.stages.get(address) if doc is not None else None
    return BackfillStage(inputs, record, doc, loaded, backend)


@app.command("worker")
def worker_command(
    address: str = typer.Argument(
        ..., help="The backfill stage to help with, e.g. backfill.source.snap1.target_1.m0.b0"
    ),
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    workspace: str | None = WorkspaceOpt,
    json_out: bool = JsonOpt,
    from_env: bool = typer.Option(
        False,
        "--from-env",
        help="Read the stage's job spec from the environment, not from the config and state: "
        "what the pods of an `executor: kubernetes` Job run.",
    ),
) -> None:
    """Join a running backfill from this host: claim shards, write them, until all are done."""
    from mactl.backfill.prepare import lease_store
    from mactl.backfill.progress import RateTracker, summarise, table
    from mactl.backfill.source import snapshot_uuid
    from mactl.backfill.spec import build_spec
    from mactl.backfill.worker import Worker

    if from_env:
        _work_from_env(address)
        return
    found = _load_backfill_stage(address, config, var, var_file, workspace)
    inputs, checkpoint = found.inputs, found.checkpoint
    workdir = Path(checkpoint.get("workdir") or Workdir(found.backend.workdir).stage_dir(address))
    snapshot = found.snapshot_name()
    spec = build_spec(
        address,
        inputs,
        workdir=workdir,
        transforms_base_dir=found.loaded.base_dir,
        snapshot=snapshot,
        snapshot_uuid=snapshot_uuid(inputs.repository, snapshot),
    )
    if checkpoint.get("deadLetter") and not inputs.deadLetter:
        spec = spec.with_deadletter(str(checkpoint["deadLetter"]))
    worker = Worker(spec)
    console = Console(stderr=True)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["summary"] = worker.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            result["error"] = exc

    thread = threading.Thread(target=work, name="backfill-worker", daemon=True)
    thread.start()
    store = lease_store(spec)
    rates = RateTracker()
    if json_out:
        thread.join()
    else:
        with Live(console=console, refresh_per_second=2, transient=True) as live:
            while thread.is_alive():
                try:
                    snap = summarise(store.units())
                    rates.add(snap)
                    live.update(table(snap, rates))
                except Exception:  # noqa: BLE001 - the display must never kill the worker
                    pass
                thread.join(timeout=2.0)
    if "error" in result:
        raise result["error"]
    summary = result["summary"]
    if json_out:
        typer.echo(orjson.dumps({"holder": summary.holder, **summary.to_json()}).decode())
    else:
        console.print(table(summarise(store.units()), rates))
        typer.echo(
            f"worker {summary.holder}: {len(summary.units_done)} shard(s) done, {summary.docs_written:,} documents written, {summary.docs_failed:,} dead-lettered"
        )


def _work_from_env(address: str) -> None:
    """A Job pod's worker: the spec (secrets from the pod's Secret-fed variables) is all it needs."""
    import os

    from mactl.backfill.worker import Worker, new_holder_id
    from mactl.executors.kubernetes import WORKER_NAME_ENV, spec_from_env

    spec = spec_from_env(os.environ)
    if spec.address != address:
        raise ConfigError(f"worker {address}: the job spec in the environment is for {spec.address}")
    pod = os.environ.get(WORKER_NAME_ENV)
    # The pod's name in the lease: which pod holds or held a shard is what an operator looks up.
    holder = f"{pod}:{new_holder_id().rsplit(':', 1)[-1]}" if pod else None
    summary = Worker(spec, holder=holder).run()
    typer.echo(orjson.dumps({"holder": summary.holder, **summary.to_json()}).decode())


@backfill_app.command("resend-failed")
def resend_failed_command(
    address: str = typer.Argument(..., help="The backfill stage whose dead-lettered documents to resend"),
    transform: str | None = typer.Option(
        None,
        "--transform",
        help="A transform to run on each original document first: a .j2 template file or module:function",
    ),
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    workspace: str | None = WorkspaceOpt,
    json_out: bool = JsonOpt,
    lock_timeout: str = LockTimeoutOpt,
) -> None:
    """Send the stage's dead-lettered documents again, optionally through a new transform.

    The result goes into the stage's books in the state (its per-index counts, the
    dead-letter total, the target counts) and its history; validations built on the
    stage are marked to be run again, since their report predates the resend."""
    from mactl.backfill import deadletter
    from mactl.backfill.doc_transforms import DocumentTransformer
    from mactl.backfill.resend import resend
    from mactl.cluster import client_for
    from mactl.transforms import parse_spec

    found = _load_backfill_stage(address, config, var, var_file, workspace)
    inputs = found.inputs
    transformer = None
    if transform is not None:
        if not Path(transform).is_file() and ":" not in transform:
            raise ConfigError(f"--transform {transform}: no such file (give a .j2 template file or module:function)")
        spec = parse_spec(
            transform
            if ":" in transform or transform.endswith((".j2", ".jinja", ".jinja2"))
            else Path(transform).read_text()
        )
        transformer = DocumentTransformer([spec])
    started = time.monotonic()
    # Under the state lock from start to end: no apply runs the stage meanwhile, and the
    # stage's books are updated from the state as it is now.
    with lock_state(found.backend, "backfill resend-failed", lock_timeout):
        doc = found.backend.read()
        record = doc.stages.get(address) if doc is not None else None
        if doc is None or record is None:
            raise StateError(f"stage '{address}' has no record in the state: apply it first")
        checkpoint = record.checkpoint or {}
        location = (record.outputs.get("deadLetter") or {}).get("location") or checkpoint.get("deadLetter")
        if not location:
            location = inputs.deadLetter.location if inputs.deadLetter else None
        if not location:
            raise StateError(f"stage '{address}': the state records no dead-letter location")
        target = client_for(inputs.target)
        result = resend(
            target,
            deadletter.Location(location, address, inputs.deadLetter.endpoint if inputs.deadLetter else None),
            transformer=transformer,
            retry_deadline_s=inputs.retryTimeoutSeconds,
        )
        stale: list[str] = []
        if result.entries:
            stale = _record_resend(doc, address, result, _target_counts(target, sorted(result.written_by_target)))
            found.backend.write(doc)
    if json_out:
        typer.echo(orjson.dumps(result.to_json()).decode())
        return
    typer.echo(
        f"resent {result.entries:,} dead-lettered document(s) in {time.monotonic() - started:.1f}s: "
        f"{result.written:,} written, {result.failed:,} still failing, {result.dropped:,} dropped by the transform"
    )
    for kind, n in sorted(result.reasons.items()):
        typer.echo(f"  still failing: {n:,} × {kind}")
    for other in stale:
        typer.echo(f"  {other}: its report predates this resend; the next apply validates again")


def _target_counts(client: Any, indices: list[str]) -> dict[str, int]:
    """Each index's document count as the target has it now (refreshed first)."""
    from opensearchpy.exceptions import NotFoundError

    counts: dict[str, int] = {}
    for index in indices:
        try:
            client.indices.refresh(index=index)
            counts[index] = int(client.count(index=index)["count"])
        except NotFoundError:
            counts[index] = 0
    return counts


def _record_resend(doc: StateDocument, address: str, result: ResendResult, counts: dict[str, int]) -> list[str]:
    """The resend in the state: the stage's books, its status, stale validations (returned), the history."""
    from mactl.backfill.resend import book_resend
    from mactl.state import current_who
    from mactl.state.document import utcnow

    record = doc.stages[address]
    record.outputs = book_resend(record.outputs, result, counts)
    record.updated_at = utcnow()
    if result.failed == 0 and record.status != "complete" and record.status.startswith("complete"):
        record.status = "complete"  # a "complete with errors" whose errors are all resolved
    stale: list[str] = []
    if result.written or result.dropped:
        built_on = _descendants(doc, address)
        for other in sorted(built_on):
            rec = doc.stages[other]
            if rec.type == "validate" and rec.status == "complete":
                rec.status = "tainted"
                rec.last_error = f"its report predates `backfill resend-failed` on {address}: validate again"
                stale.append(other)
    detail = (
        f"{result.entries} dead-lettered document(s): {result.written} written, {result.failed} still failing, "
        f"{result.dropped} dropped by the transform" + (f"; to validate again: {', '.join(stale)}" if stale else "")
    )
    doc.record(
        who=current_who(),
        operation="backfill resend-failed",
        address=address,
        result="ok" if result.failed == 0 else "failed",
        detail=detail,
    )
    return stale


def _descendants(doc: StateDocument, address: str) -> set[str]:
    found: set[str] = set()
    todo = [address]
    while todo:
        current = todo.pop()
        for other, rec in doc.stages.items():
            if current in rec.depends_on and other not in found:
                found.add(other)
                todo.append(other)
    return found
