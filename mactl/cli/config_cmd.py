"""`mactl validate` and `mactl graph`, plus the config options every command shares.

`ConfigPathOpt`, `VarOpt` and `VarFileOpt` are the `-c/--config`, `-var`/`--var` and
`-var-file`/`--var-file` options (Terraform's single-dash spelling and the double-dash
one), and `NoPythonTransformsOpt` is `--no-python-transforms`; `load_from_options` turns
them into a `LoadedConfig`. Other command modules
(plan, apply, …) reuse them so that every command reads the config the same way.
"""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mactl.cli.app import app
from mactl.config.issues import ConfigErrors, ConfigIssue
from mactl.config.loader import LoadedConfig, load_config
from mactl.errors import ConfigError, MactlError

if TYPE_CHECKING:
    from mactl.graph.expand import StageGraph
    from mactl.graph.stage import Stage

ConfigPathOpt = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="The config file (YAML, JSON, or JSON with // comments). Default: mactl.yaml, then mactl.json.",
        dir_okay=False,
    ),
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option("-var", "--var", help="Set a variable: NAME=VALUE. Repeatable; later ones win.", metavar="NAME=VALUE"),
]
VarFileOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "-var-file", "--var-file", help="A YAML/JSON file of NAME: VALUE. Repeatable, in order.", dir_okay=False
    ),
]


def _refuse_python_transforms(value: bool) -> bool:
    """`--no-python-transforms` is `MACTL_NO_PYTHON_TRANSFORMS=1`, for this process and those it starts."""
    if value:
        from mactl.transforms import NO_PYTHON_ENV

        os.environ[NO_PYTHON_ENV] = "1"  # read by the config loader, the transform compiler and workers
    return value


NoPythonTransformsOpt = Annotated[
    bool,
    typer.Option(
        "-no-python-transforms",
        "--no-python-transforms",
        help="Refuse Python (module:function) transforms: they run code with mactl's privileges. "
        "Same as MACTL_NO_PYTHON_TRANSFORMS=1; use it on untrusted configs (pull requests).",
        callback=_refuse_python_transforms,
        expose_value=False,
    ),
]
GraphFormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="mermaid (default), dot or json.", case_sensitive=False)
]


def load_from_options(config: Path | None, var: list[str] | None, var_file: list[Path] | None) -> LoadedConfig:
    """Load the config named on the command line (the shared entry for every command)."""
    return load_config(config, var_args=var or [], var_files=var_file or [])


def print_warnings(loaded: LoadedConfig) -> None:
    for warning in loaded.warnings:
        typer.secho(f"Warning: {warning}", fg="yellow", err=True)


def find_stage(graph: StageGraph, address: str, stage_type: str, *, none_hint: str) -> Stage:
    """The stage at `address` in the expanded graph, which must be a `stage_type` stage.

    Commands that work on one stage (`mactl worker`, `backfill resend-failed`,
    `metadata evaluate`) reject an unknown or wrong-type address with the same messages,
    naming the stages of that type the config does have (`none_hint` when it has none).
    """
    stage = graph.stages.get(address)
    if stage is None:
        known = [a for a in graph.topological() if a.startswith(f"{stage_type}.")]
        raise ConfigError(
            f"no stage '{address}' in the config",
            hint=f"{stage_type} stages: {', '.join(known)}" if known else none_hint,
        )
    if stage.type != stage_type:
        raise ConfigError(f"stage '{address}' is a {stage.type} stage, not a {stage_type} stage")
    return stage


LockTakeoverOpt = Annotated[
    bool,
    typer.Option(
        "-lock-takeover-stale",
        "--lock-takeover-stale",
        help="Take over the state lock if its holder is provably gone (its process ended on this host, or its "
        "heartbeat stopped); recorded in the history. A live holder is never taken over.",
    ),
]


def lock_state(
    backend: Any, operation: str, lock_timeout: str, takeover_stale: bool = False
) -> AbstractContextManager[Any]:
    """Take the state lock for `operation`, waiting up to `lock_timeout` (`0s`, `30s`, `5m`).

    Every command that changes the state waits the same way and says on stderr whom it
    is waiting for, so that a command queued behind another never looks hung. With
    `takeover_stale` (-lock-takeover-stale) a lock whose holder is provably gone is taken
    over, said on stderr and recorded in the history.
    """
    from mactl.state import current_who, parse_duration

    timeout = parse_duration(lock_timeout)

    def say_waiting(holder: Any) -> None:
        typer.echo(
            f"Waiting for the state lock held by {holder.who} (pid {holder.pid}) for {holder.operation!r}…", err=True
        )

    def record_takeover(old: Any, why: str) -> None:
        detail = f"took over stale lock {old.id} of {old.who} pid {old.pid} ({old.operation}): {why}"
        typer.echo(f"Took over the stale state lock {old.id} of {old.who} (pid {old.pid}): {why}.", err=True)
        doc = backend.read()
        if doc is not None:
            doc.record(who=current_who(), operation="lock takeover", result="ok", detail=f"for {operation}: {detail}")
            backend.write(doc)

    held: AbstractContextManager[Any] = backend.lock(
        operation, timeout, on_wait=say_waiting, takeover_stale=takeover_stale, on_takeover=record_takeover
    )
    return held


def _count_by_type(types: list[str]) -> str:
    counts: dict[str, int] = {}
    for stage_type in types:
        counts[stage_type] = counts.get(stage_type, 0) + 1
    return ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))


@app.command("validate")
def validate_command(
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    no_python_transforms: NoPythonTransformsOpt = False,
) -> None:
    """Check the config without touching state or clusters; report every problem at once.

    Checks the file, variables, the schema, cross-references, the stage graph, and each
    provider's own plan-time checks on every stage's inputs.
    """
    loaded: LoadedConfig | None = None
    try:
        loaded = load_from_options(config, var, var_file)
        graph = expand_named(loaded)
        problems = provider_problems(graph)
        from mactl.plan.preflight import transform_issues

        problems += transform_issues(loaded)
        if problems:
            raise ConfigErrors(problems, source=str(loaded.path))
    except ConfigErrors as err:
        if not as_json:
            raise
        _print_json(
            {
                "valid": False,
                "config": err.source or (str(loaded.path) if loaded else None),
                "error_count": len(err.issues),
                "errors": [{"path": i.path, "message": i.message} for i in err.issues],
                "warnings": loaded.warnings if loaded else [],
            }
        )
        raise typer.Exit(1) from None
    except ConfigError as err:
        if not as_json:
            raise
        _print_json(
            {
                "valid": False,
                "config": None,
                "error_count": 1,
                "errors": [{"path": "", "message": err.message}],
                "warnings": [],
            }
        )
        raise typer.Exit(1) from None

    types = [graph.stages[a].type for a in graph.topological()]
    if as_json:
        _print_json(
            {
                "valid": True,
                "config": str(loaded.path),
                "error_count": 0,
                "errors": [],
                "warnings": loaded.warnings,
                "stage_count": len(types),
                "stages_by_type": {t: types.count(t) for t in sorted(set(types))},
            }
        )
        return
    print_warnings(loaded)
    typer.secho(f"Success! {loaded.path} is valid: {len(types)} stages ({_count_by_type(types)}).", fg="green")


def expand_named(loaded: LoadedConfig, workspace: str | None = None) -> StageGraph:
    """`expand(loaded.config)` with the transforms' code digests, and graph-level errors naming the config file.

    `workspace` is the state's workspace (its snapshots' names carry the state's tag); the
    selected one when None.
    """
    from mactl.graph.expand import expand
    from mactl.state.workspaces import current_workspace

    workspace = current_workspace(loaded.config.state, loaded.base_dir) if workspace is None else workspace
    try:
        return expand(loaded.config, config_dir=loaded.base_dir, workspace=workspace)
    except ConfigErrors as err:
        if err.source is None:
            raise ConfigErrors(err.issues, source=str(loaded.path), hint=err.hint) from None
        raise


def provider_problems(graph: StageGraph) -> list[ConfigIssue]:
    """Each provider's own plan-time checks (`Provider.validate`), named by stage address."""
    from mactl.providers.registry import get_provider

    issues: list[ConfigIssue] = []
    for address in graph.topological():
        stage = graph.stages[address]
        provider = get_provider(stage.type)
        for problem in provider.validate(provider.Inputs.model_validate(stage.inputs)):
            issues.append(ConfigIssue(address, problem))
    return issues


@app.command("graph")
def graph_command(
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    fmt: GraphFormatOpt = "mermaid",
    state: Annotated[
        bool, typer.Option("--state", help="Colour stages by their status in the state (read-only, no lock).")
    ] = False,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan", help="Colour stages by their planned action in PLANFILE (from `mactl plan -out`).", dir_okay=False
        ),
    ] = None,
) -> None:
    """Print the stage graph: mermaid by default, or Graphviz dot, or JSON.

    With `--plan PLANFILE` stages are coloured by planned action, with `--state` by
    their recorded status; a legend explains the colours. Stages stamped out for a
    second (third, …) target are drawn as clones.
    """
    from mactl.graph.render import FORMATS, render_graph

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format '{fmt}' (expected one of: {', '.join(FORMATS)})")
    if state and plan is not None:
        raise ConfigError("--state and --plan: give one of them (colour by status, or by planned action)")
    loaded = load_from_options(config, var, var_file)
    graph = expand_named(loaded)
    colors: dict[str, str] | None = None
    if state:
        colors = _status_colors(loaded, graph)
    elif plan is not None:
        from mactl.plan.planfile import load_plan

        colors = load_plan(plan).colors()
    print_warnings(loaded)
    typer.echo(render_graph(graph, fmt, colors), nl=False)


def _status_colors(loaded: LoadedConfig, graph: StageGraph) -> dict[str, str]:
    """Each stage's status in the state; stages the state has never seen are `pending`."""
    try:
        from mactl.state import open_backend
    except ImportError as exc:  # pragma: no cover - the state layer ships with mactl
        raise MactlError(f"the state layer is not available: {exc}") from None
    backend = open_backend(loaded.config.state, base_dir=loaded.base_dir)
    doc = backend.read()
    recorded = doc.stages if doc is not None else {}
    colors: dict[str, str] = {addr: (recorded[addr].status if addr in recorded else "pending") for addr in graph.stages}
    return colors


def _print_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=2))
