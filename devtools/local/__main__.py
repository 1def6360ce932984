"""`python -m devtools.local` (what `scripts/clusters` runs): up, down, status, env, fetch, versions, load-sample."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

try:  # typer >= 0.2x bundles its own click: usage errors are that copy's exceptions
    from typer._click.exceptions import ClickException
except ImportError:  # older typer runs on the click package
    from click import ClickException  # type: ignore[assignment]

from devtools.local import kafka, paths, process
from devtools.local.clusters import CLUSTERS
from devtools.local.distributions import PINNED_VERSIONS, ensure_unpacked, latest_versions, version_for
from devtools.local.errors import LocalServiceError
from devtools.local.services import (
    DEFAULT_SERVICES,
    SERVICE_NAMES,
    TRIED_ONLY,
    check_names,
    env_lines,
    start_services,
    status_of,
    stop_services,
)

cli = typer.Typer(
    name="clusters",
    help="Local ES 7.10.2 / 8.x / 9.x and OpenSearch 1.3 / 2.x / 3.x clusters, moto S3 and Kafka, without Docker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

NAMES_HELP = f"Services: {', '.join(SERVICE_NAMES)}."
DirOption = typer.Option(None, "--dir", help="Runtime folder (default: MACTL_LOCAL_DIR or a per-user default).")


def _runtime(folder: Path | None) -> Path:
    return folder.resolve() if folder else paths.runtime_dir()


@cli.command()
def up(
    names: list[str] = typer.Argument(None, help=NAMES_HELP + " Default: es710 os13 os2."),
    folder: Path | None = DirOption,
    timeout: float = typer.Option(240.0, help="Seconds to wait for each service to be healthy."),
) -> None:
    """Start services (in parallel) and wait until they are healthy."""
    wanted = check_names(names or list(DEFAULT_SERVICES))
    runtime = _runtime(folder)
    began = time.monotonic()
    typer.echo(f"starting {' '.join(wanted)} (state in {runtime}) …")
    started = start_services(wanted, runtime=runtime, timeout=timeout)
    for inst in started.values():
        typer.echo(f"  {inst.name:<6} {inst.address:<24} {inst.version:<8} pid {inst.pid}")
    typer.echo(f"up in {time.monotonic() - began:.0f}s; `scripts/clusters env` prints the variables for tests")


@cli.command()
def down(
    names: list[str] = typer.Argument(None, help=NAMES_HELP + " Default: all."),
    folder: Path | None = DirOption,
) -> None:
    """Stop services this harness started: SIGTERM, wait, then SIGKILL."""
    wanted = check_names(names or list(SERVICE_NAMES))
    for name, outcome in stop_services(wanted, runtime=_runtime(folder)).items():
        typer.echo(f"  {name:<6} {outcome}")


@cli.command()
def status(
    folder: Path | None = DirOption,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per service, in a list."),
) -> None:
    """One line per service: name, address, version, health."""
    runtime = _runtime(folder)
    rows = [status_of(name, runtime=runtime) for name in SERVICE_NAMES]
    if as_json:
        typer.echo(json.dumps([row.__dict__ for row in rows], indent=2))
        return
    for row in rows:
        pid = f"pid {row.pid}" if row.pid else ""
        typer.echo(f"{row.name:<6} {row.address:<24} {row.version:<12} {row.health:<8} {pid}".rstrip())


@cli.command()
def env(folder: Path | None = DirOption) -> None:
    """Export lines for the services that are up: `eval "$(scripts/clusters env)"`."""
    for line in env_lines(_runtime(folder)):
        typer.echo(line)


@cli.command()
def fetch(names: list[str] = typer.Argument(None, help=NAMES_HELP + " Default: all but es9.")) -> None:
    """Download and unpack the distributions (and Kafka jars) without starting anything.

    Without names: everything the tests use, so not es9 (no test needs it; name it to fetch it)."""
    wanted = check_names(names or [n for n in SERVICE_NAMES if n not in TRIED_ONLY])
    process.java_home()
    for name in wanted:
        began = time.monotonic()
        if name in CLUSTERS:
            home = ensure_unpacked(CLUSTERS[name].distribution())
            typer.echo(f"  {name:<6} {home} ({time.monotonic() - began:.0f}s)")
        elif name == "kafka":
            typer.echo(f"  kafka  {kafka.ensure_jars()} ({time.monotonic() - began:.0f}s)")


@cli.command("load-sample")
def load_sample_command(
    name: str = typer.Argument("es710", help="Cluster to load: es710, os13 or os2."),
    folder: Path | None = DirOption,
    docs: int = typer.Option(1000, help="Documents per index."),
) -> None:
    """(Re)create the demo indices (demo-products, demo-logs-2024.01/02) with deterministic data."""
    from devtools.local.sample import load_sample

    if name not in CLUSTERS:
        raise LocalServiceError(f"load-sample: unknown cluster {name!r}", hint="choose es710, os13 or os2")
    target = status_of(name, runtime=_runtime(folder))
    if target.pid is None:
        raise LocalServiceError(f"{name} is not up", hint=f"scripts/clusters up {name}")
    for index, count in load_sample(target.address, docs_per_index=docs).items():
        typer.echo(f"  {name}: {index:<20} {count} documents")


@cli.command()
def versions(
    latest: bool = typer.Option(False, "--latest", help="Also ask Maven Central (via mvn) for newer releases."),
) -> None:
    """The pinned versions (devtools/local/distributions.py) and, with --latest, the newest released."""
    found = latest_versions() if latest else {}
    for name in CLUSTERS:
        line = f"{name:<6} pinned {PINNED_VERSIONS[name]:<8} in use {version_for(name)}"
        if latest:
            newest = found.get(name) or []
            line += f"  newest on Maven Central: {newest[-1] if newest else '(metadata lists none in this line)'}"
        typer.echo(line)
    typer.echo(f"kafka  pinned {kafka.KAFKA_VERSION:<8} in use {kafka.version()}")
    if latest:
        typer.echo("To bump: edit PINNED_VERSIONS in devtools/local/distributions.py and run the tests.")


def run_guarded(application: typer.Typer, argv: list[str] | None = None) -> int:
    """Run the CLI, turning `LocalServiceError` into a message (and hint) and an exit code, no traceback."""
    try:
        # Without standalone mode click returns the code of a `typer.Exit(n)` instead of raising.
        result = application(args=argv, prog_name="scripts/clusters", standalone_mode=False)
    except LocalServiceError as err:
        typer.secho(f"Error: {err.message}", fg="red", err=True)
        if err.hint:
            typer.echo(f"  hint: {err.hint}", err=True)
        return err.exit_code
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 130
    except typer.Exit as ex:
        return ex.exit_code
    except ClickException as ex:
        ex.show()
        return ex.exit_code
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(run_guarded(cli))
