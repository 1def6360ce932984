"""`mactl state …`, `mactl history`, `mactl lock status`, `mactl force-unlock`, `mactl workspace …`.

These commands only parse arguments, call `mactl.state`, and render; every change to
the state is taken under its lock and recorded in its history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from mactl.address import instance_address, parse_address
from mactl.cli.app import app
from mactl.cli.config_cmd import (
    ConfigPathOpt,
    LockTakeoverOpt,
    VarFileOpt,
    VarOpt,
    load_from_options,
    lock_state,
)
from mactl.errors import ConfigError, LockError, StateError
from mactl.plan.instances import forget_instance, instance_view, recorded_instances
from mactl.state import (
    LocalStateConfig,
    LockInfo,
    current_who,
    current_workspace,
    delete_workspace,
    list_workspaces,
    new_workspace,
    open_backend,
    parse_duration,
    select_workspace,
)
from mactl.state.config import S3StateConfig
from mactl.state.document import StateDocument, decode_document
from mactl.state.locking import age_seconds, format_age, staleness

state_app = typer.Typer(help="Inspect and change the state: list, show, rm, pull, push.", no_args_is_help=True)
lock_app = typer.Typer(help="Inspect the state lock.", no_args_is_help=True)
workspace_app = typer.Typer(help="Several independent states for one config (pre-prod, prod, …).", no_args_is_help=True)
app.add_typer(state_app, name="state")
app.add_typer(lock_app, name="lock")
app.add_typer(workspace_app, name="workspace")

LockTimeoutOpt = typer.Option(
    "0s", "-lock-timeout", "--lock-timeout", help="How long to wait for the state lock (e.g. 30s, 5m)."
)
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")

AnyStateConfig = LocalStateConfig | S3StateConfig


def load_state_config(
    config: Path | None, var: list[str] | None, var_file: list[Path] | None
) -> tuple[AnyStateConfig, Path]:
    """The `state:` block of the config and the folder its relative paths start from.

    That folder is the config file's, as for `mactl plan`/`apply`, so every command finds
    the same `.mactl/`. Without a config file the state commands still work (`mactl state
    list` in an empty folder), on the default `.mactl/` state of the working directory.
    """
    from mactl.config.loader import DEFAULT_FILES

    if config is None and not any(Path(name).is_file() for name in DEFAULT_FILES):
        return LocalStateConfig(), Path.cwd()
    if config is not None and not config.is_file():
        raise ConfigError(f"config file {config} does not exist (-c/--config)")
    loaded = load_from_options(config, var, var_file)
    return loaded.config.state, loaded.base_dir


def _backend(config: Path | None, var: list[str] | None, var_file: list[Path] | None) -> Any:
    state, base_dir = load_state_config(config, var, var_file)
    return open_backend(state, base_dir=base_dir)


def _console() -> Console:
    return Console(soft_wrap=False, width=160)


def _print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


# -- mactl state ------------------------------------------------------------------


@state_app.command("list")
def state_list(
    json_out: bool = JsonOpt, config: ConfigPathOpt = None, var: VarOpt = None, var_file: VarFileOpt = None
) -> None:
    """List the stages the state records, with their status."""
    backend = _backend(config, var, var_file)
    doc = backend.read()
    stages = doc.stages if doc else {}
    rows: list[dict[str, Any]] = []
    for a, r in sorted(stages.items()):
        rows.append(
            {"address": a, "type": r.type, "status": r.status, "attempts": r.attempts, "updated_at": r.updated_at}
        )
        for key, instance in sorted((recorded_instances(r.outputs) or {}).items()):
            rows.append(
                {
                    "address": instance_address(a, key),
                    "type": r.type,
                    "status": str(instance.get("status", "complete")),
                    "instance_of": a,
                    "key": key,
                }
            )
    if json_out:
        _print_json(rows)
        return
    if not stages:
        typer.echo(f"No stages in the state ({backend.describe()}, workspace {backend.workspace}).")
        return
    table = Table(
        title=f"{backend.describe()} · workspace {backend.workspace} · serial {doc.serial}", title_justify="left"
    )
    for column in ("address", "type", "status", "attempts", "updated"):
        table.add_column(column)
    for row in rows:
        attempts = "" if "instance_of" in row else str(row["attempts"])
        table.add_row(row["address"], row["type"], row["status"], attempts, row.get("updated_at") or "")
    _console().print(table)


@state_app.command("show")
def state_show(
    address: str = typer.Argument(
        ..., help='The stage address, e.g. snapshot.source.snap1, or an instance, e.g. metadata.s.snap1.t.m0["logs"].'
    ),
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> None:
    """Print one stage's record (inputs with secrets masked, outputs, status, timestamps) as JSON;
    for an instance address (`ADDR["key"]`), what the stage records about that instance."""
    backend = _backend(config, var, var_file)
    doc = backend.read()
    addr = parse_address(address, flag="state show")
    record = doc.stages.get(addr.stage) if doc else None
    if record is None:
        raise StateError(f"no stage {addr.stage!r} in the state ({backend.describe()})", hint="see `mactl state list`")
    if addr.key is None:
        _print_json({"address": address, **record.model_dump(mode="json")})
        return
    instance = (recorded_instances(record.outputs) or {}).get(addr.key)
    if instance is None:
        raise StateError(f"no instance {addr} in the state ({backend.describe()})", hint="see `mactl state list`")
    view = {k: v for k, v in instance_view(record.outputs, addr.key).items() if k != "instances"}
    _print_json(
        {
            "address": str(addr),
            "instance_of": addr.stage,
            "key": addr.key,
            "type": record.type,
            **instance,
            "outputs": view,
        }
    )


@state_app.command("rm")
def state_rm(
    addresses: list[str] = typer.Argument(..., help='Stage or instance addresses (ADDR["key"]) to forget.'),
    lock_timeout: str = LockTimeoutOpt,
    lock_takeover_stale: LockTakeoverOpt = False,
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> None:
    """Forget stage records (nothing is rolled back on the clusters); recorded in the history."""
    backend = _backend(config, var, var_file)
    with lock_state(backend, "state rm", lock_timeout, lock_takeover_stale):
        doc = backend.read()
        parsed = [parse_address(a, flag="state rm") for a in addresses]
        for addr in parsed:
            record = doc.stages.get(addr.stage) if doc is not None else None
            if record is None:
                raise StateError(
                    f"no stage {addr.stage!r} in the state ({backend.describe()})", hint="see `mactl state list`"
                )
            if addr.key is not None and addr.key not in (recorded_instances(record.outputs) or {}):
                raise StateError(
                    f"no instance {addr} in the state ({backend.describe()})", hint="see `mactl state list`"
                )
        assert doc is not None
        who = current_who()
        for addr in parsed:
            if addr.key is None:
                record = doc.stages.pop(addr.stage)
                detail = f"was {record.status}"
            else:
                # Forget one instance: the stage no longer owns it (nothing is rolled back).
                record = doc.stages[addr.stage]
                doc.stages[addr.stage] = record.model_copy(
                    update={"outputs": forget_instance(record.outputs, addr.key)}
                )
                detail = "instance forgotten"
            doc.record(who=who, operation="state rm", address=str(addr), result="ok", detail=detail)
        stored = backend.write(doc)
    for address in addresses:
        typer.echo(f"Removed {address} from the state (serial {stored.serial}).")


@state_app.command("pull")
def state_pull(config: ConfigPathOpt = None, var: VarOpt = None, var_file: VarFileOpt = None) -> None:
    """Print the whole stored state as JSON (e.g. to keep a copy, or to edit and push)."""
    backend = _backend(config, var, var_file)
    doc = backend.read()
    if doc is None:
        typer.echo(f"No state yet at {backend.describe()}.", err=True)
        return
    typer.echo(orjson.dumps(doc.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())


def _push_replaces(file: Path, pushed: StateDocument, current: StateDocument | None, force: bool) -> bool:
    """Whether `state push` must replace the stored state outright (`write(replace=True)`).

    A push normally continues the stored state's lineage with a serial no older than the
    stored one; anything else is refused unless --force, which then replaces it. (An
    identical document is handled by the caller: nothing to push.)
    """
    if current is None:
        return False
    if pushed.lineage != current.lineage:
        if force:
            return True
        raise StateError(
            f"{file} has lineage {pushed.lineage}, the stored state {current.lineage}: they are different states",
            hint="push it anyway with --force (the stored state stays in the backups)",
        )
    if force:
        return True
    if pushed.serial < current.serial:
        raise StateError(
            f"{file} has serial {pushed.serial}, older than the stored serial {current.serial}",
            hint="pull the newer state first, or push anyway with --force",
        )
    if pushed.serial == current.serial:
        raise StateError(
            f"{file} has the same serial ({pushed.serial}) as the stored state but different contents",
            hint="push anyway with --force",
        )
    return False


@state_app.command("push")
def state_push(
    file: Path = typer.Argument(..., help="A state JSON file (from `mactl state pull`)."),
    force: bool = typer.Option(False, "--force", help="Replace even a state of another lineage or a newer serial."),
    lock_timeout: str = LockTimeoutOpt,
    lock_takeover_stale: LockTakeoverOpt = False,
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> None:
    """Replace the stored state with FILE. Refuses another lineage or an older serial without --force."""
    if not file.is_file():
        raise ConfigError(f"state file {file} does not exist (FILE)")
    pushed = decode_document(file.read_bytes(), str(file))
    backend = _backend(config, var, var_file)
    with lock_state(backend, "state push", lock_timeout, lock_takeover_stale):
        current = backend.read()
        if current is not None and not force and pushed.model_dump() == current.model_dump():
            typer.echo(f"The stored state already is {file} (serial {current.serial}); nothing to push.")
            return
        replace = _push_replaces(file, pushed, current, force)
        doc = pushed.model_copy(update={"serial": current.serial if current else 0, "history": list(pushed.history)})
        doc.record(
            who=current_who(),
            operation="state push",
            result="ok",
            detail=f"from {file} (lineage {pushed.lineage}, serial {pushed.serial}){' --force' if force else ''}",
        )
        stored = backend.write(doc, replace=replace)
    typer.echo(f"Pushed {file} to {backend.describe()} (now serial {stored.serial}).")


# -- mactl history ----------------------------------------------------------------


@app.command("history")
def history(
    json_out: bool = JsonOpt,
    limit: int = typer.Option(0, "--limit", "-n", help="Show only the last N entries (0: all)."),
    address: str = typer.Option(None, "--address", help="Only entries for this stage address."),
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> None:
    """Every operation done to this workspace's state: who, when, what, and how it ended."""
    backend = _backend(config, var, var_file)
    doc = backend.read()
    entries = doc.history if doc else []
    if address:
        entries = [e for e in entries if e.address == address]
    if limit > 0:
        entries = entries[-limit:]
    if json_out:
        _print_json([e.model_dump(mode="json") for e in entries])
        return
    if not entries:
        typer.echo(f"No history yet ({backend.describe()}, workspace {backend.workspace}).")
        return
    table = Table(title=f"history of {backend.describe()} · workspace {backend.workspace}", title_justify="left")
    for column in ("serial", "when", "who", "operation", "address", "result", "detail"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            "" if entry.serial is None else str(entry.serial),
            entry.at,
            entry.who,
            entry.operation,
            entry.address or "",
            entry.result,
            entry.detail or "",
        )
    _console().print(table)


# -- mactl lock status / force-unlock ---------------------------------------------


def lock_summary(info: LockInfo) -> dict[str, Any]:
    verdict = staleness(info)
    return {
        **{k: getattr(info, k) for k in ("id", "who", "pid", "operation", "created_at", "heartbeat_at", "workspace")},
        "age_s": age_seconds(info.created_at),
        "heartbeat_age_s": age_seconds(info.heartbeat_at),
        "heartbeat_interval_s": info.heartbeat_s or None,
        "stale": verdict.stale,
        "stale_reason": verdict.reason,
    }


@lock_app.command("status")
def lock_status(
    json_out: bool = JsonOpt, config: ConfigPathOpt = None, var: VarOpt = None, var_file: VarFileOpt = None
) -> None:
    """Who holds this workspace's state lock, for how long, and when it last heartbeated."""
    backend = _backend(config, var, var_file)
    info = backend.lock_info()
    if json_out:
        _print_json(
            {
                "workspace": backend.workspace,
                "state": backend.describe(),
                "locked": info is not None,
                "lock": lock_summary(info) if info else None,
            }
        )
        return
    if info is None:
        typer.echo(f"Not locked ({backend.describe()}, workspace {backend.workspace}).")
        return
    summary = lock_summary(info)
    typer.echo(f"Locked ({backend.describe()}, workspace {backend.workspace}):")
    typer.echo(f"  ID:             {info.id}")
    typer.echo(f"  holder:         {info.who}, pid {info.pid}")
    typer.echo(f"  operation:      {info.operation}")
    typer.echo(f"  taken:          {info.created_at} ({format_age(summary['age_s'])} ago)")
    typer.echo(f"  last heartbeat: {info.heartbeat_at} ({format_age(summary['heartbeat_age_s'])} ago)")
    if summary["stale"]:
        typer.echo(f"  holder state:   GONE — {summary['stale_reason']}")
        typer.echo(
            f"  (take it over with `mactl apply -lock-takeover-stale`, or remove it: mactl force-unlock {info.id})"
        )
    else:
        typer.echo(f"  holder state:   {summary['stale_reason']}")
        typer.echo("  (a holder that crashed stops heartbeating; if so: mactl force-unlock ID)")


@app.command("force-unlock")
def force_unlock(
    lock_id: str = typer.Argument(..., help="The exact lock ID, from `mactl lock status`."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> None:
    """Remove a stuck state lock. Only do this when its holder is really gone."""
    import sys

    backend = _backend(config, var, var_file)
    info = backend.lock_info()
    if info is not None and info.id == lock_id and not yes:
        if not sys.stdin.isatty():
            raise LockError(
                f"force-unlock {lock_id} needs a confirmation and there is no terminal to ask on; "
                "pass --yes to remove the lock without asking"
            )
        summary = lock_summary(info)
        typer.echo(
            f"Lock {info.id}: {info.who} pid {info.pid}, {info.operation!r}, "
            f"last heartbeat {format_age(summary['heartbeat_age_s'])} ago."
        )
        typer.confirm("Remove it? The holder, if still running, will stop at its next state write", abort=True)
    removed = backend.force_unlock(lock_id)
    typer.echo(f"Removed lock {removed.id} (held by {removed.who}, pid {removed.pid}, for {removed.operation!r}).")
    try:
        with backend.lock("force-unlock"):
            doc = backend.read()
            if doc is not None:
                doc.record(
                    who=current_who(),
                    operation="force-unlock",
                    result="ok",
                    detail=f"removed lock {removed.id} of {removed.who} pid {removed.pid} ({removed.operation})",
                )
                backend.write(doc)
    except LockError:
        typer.echo("(someone took the lock at once; the force-unlock is not recorded in the history)", err=True)


# -- mactl workspace --------------------------------------------------------------


@workspace_app.command("list")
def workspace_list(
    json_out: bool = JsonOpt, config: ConfigPathOpt = None, var: VarOpt = None, var_file: VarFileOpt = None
) -> None:
    """List workspaces; the selected one is marked with *."""
    state, base_dir = load_state_config(config, var, var_file)
    selected = current_workspace(state, base_dir)
    names = list_workspaces(state, base_dir)
    if json_out:
        _print_json({"selected": selected, "workspaces": names})
        return
    for name in names:
        typer.echo(f"{'*' if name == selected else ' '} {name}")


@workspace_app.command("show")
def workspace_show(config: ConfigPathOpt = None, var: VarOpt = None, var_file: VarFileOpt = None) -> None:
    """Print the selected workspace."""
    typer.echo(current_workspace(*load_state_config(config, var, var_file)))


@workspace_app.command("new")
def workspace_new(
    name: str = typer.Argument(...),
    select: bool = typer.Option(True, "--select/--no-select", help="Select it afterwards (default)."),
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> None:
    """Create a workspace with an empty state, and select it."""
    state, base_dir = load_state_config(config, var, var_file)
    backend = new_workspace(state, name, base_dir)
    if select:
        select_workspace(state, name, base_dir)
    typer.echo(f"Created workspace {name!r} ({backend.describe()}){' and selected it' if select else ''}.")


@workspace_app.command("select")
def workspace_select(
    name: str = typer.Argument(...), config: ConfigPathOpt = None, var: VarOpt = None, var_file: VarFileOpt = None
) -> None:
    """Make NAME the workspace later commands use."""
    state, base_dir = load_state_config(config, var, var_file)
    select_workspace(state, name, base_dir)
    typer.echo(f"Switched to workspace {name!r}.")


@workspace_app.command("delete")
def workspace_delete(
    name: str = typer.Argument(...),
    force: bool = typer.Option(False, "--force", help="Delete even if its state still records stages."),
    lock_timeout: str = LockTimeoutOpt,
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> None:
    """Delete a workspace's state, backups and lock (not `default`, not the selected one)."""
    state, base_dir = load_state_config(config, var, var_file)
    delete_workspace(state, name, base_dir, force=force, lock_timeout_s=parse_duration(lock_timeout))
    typer.echo(f"Deleted workspace {name!r}.")
