"""`mactl ui`: serve the web console for one migration (see `mactl.ui`).

This command only wires things: it hands the console the CLI's own code paths (status
rows, the plan, the approval) and runs the web server. It checks everything it can before
serving (the config loads, Graphviz's `dot` is installed, the port is free), each failure
one line naming what to fix.
"""

from __future__ import annotations

import shlex
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mactl.cli.app import app
from mactl.cli.config_cmd import ConfigPathOpt, NoPythonTransformsOpt, VarFileOpt, VarOpt
from mactl.errors import ConfigError

if TYPE_CHECKING:
    from mactl.plan.definition import Plan
    from mactl.ui.sources import Opened

DEFAULT_PORT = 8470


def _cli_args(config: Path | None, var: list[str] | None, var_file: list[Path] | None) -> str:
    """The options a suggested command repeats (`-c CONFIG -var k=v`); sensitive values are never repeated."""
    parts: list[str] = []
    if config is not None:
        parts += ["-c", str(config)]
    for v in var_file or []:
        parts += ["-var-file", str(v)]
    if var:
        parts.append("-var …")  # values may be secrets: say that they are needed, not what they are
    return " ".join(shlex.quote(p) if p != "-var …" else p for p in parts)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(f"--host/--port: cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(64)
    return sock


@app.command("ui")
def ui_command(
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    port: Annotated[
        int, typer.Option("-port", "--port", help="The port to serve on.", min=0, max=65535)
    ] = DEFAULT_PORT,
    host: Annotated[
        str,
        typer.Option(
            "-host",
            "--host",
            help="The address to bind. Anything but a loopback address requires the printed token on every request.",
        ),
    ] = "127.0.0.1",
    poll_ms: Annotated[
        int, typer.Option("-poll-ms", "--poll-ms", help="How often the map refreshes, in milliseconds.", min=100)
    ] = 1000,
) -> None:
    """Serve the web console: the live workflow map, stage pages, the plan, the audit, the history, approvals.

    Reads the state without taking its lock; writes it only when a stage is approved from a page.
    """
    import uvicorn

    from mactl.cli.config_cmd import expand_named, load_from_options
    from mactl.cli.engine_cmd import Session, approve_stage, make_plan
    from mactl.cli.status_cmd import collect
    from mactl.plan.builder import PlanOptions
    from mactl.state import current_who, open_backend
    from mactl.ui.access import Access, is_loopback, new_token
    from mactl.ui.app import build_app
    from mactl.ui.layout import MapCache, require_dot
    from mactl.ui.sources import ConsoleSources, Opened

    require_dot()

    def open_config() -> Opened:
        loaded = load_from_options(config, var, var_file)
        graph = expand_named(loaded)
        return Opened(loaded, graph, open_backend(loaded.config.state, base_dir=loaded.base_dir))

    def plan(opened: Opened, refresh: bool) -> Plan:
        session = Session(opened.loaded, opened.graph, opened.backend)
        return make_plan(session, PlanOptions(refresh=refresh), opened.backend.read())

    def approve(opened: Opened, address: str, who: str, detail: str) -> None:
        session = Session(opened.loaded, opened.graph, opened.backend)
        approve_stage(session, address, who, "10s", detail=detail)

    first = open_config()
    maps = MapCache()
    maps.layout(first.graph)  # lay the map out now: a graph dot cannot draw fails before serving
    sources = ConsoleSources(
        config_path=Path(first.loaded.path),
        cli_args=_cli_args(config, var, var_file),
        open=open_config,
        statuses=collect,
        plan=plan,
        approve=approve,
        who=current_who,
    )
    token = None if is_loopback(host) else new_token()
    sock = _listen(host, port)
    bound_port = int(sock.getsockname()[1])
    access = Access(host, bound_port, token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}/"
    typer.echo(f"mactl console for {first.loaded.path}: {url}" + (f"?token={token}" if token else ""), err=False)
    if token:
        typer.echo(
            f"Bound to {host}, not a loopback address: every request must carry the token {token} "
            "(the link above sets it as a cookie)."
        )
    typer.echo("Ctrl-C stops it.")
    server_config: Any = uvicorn.Config(
        build_app(sources, access, poll_ms, first, maps), log_level="warning", access_log=False
    )
    server = uvicorn.Server(server_config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        return
