"""`mactl version` and `mactl --version`."""

from __future__ import annotations

import typer

from mactl import __version__
from mactl.cli.app import app


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mactl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Plan and apply Elasticsearch/OpenSearch → OpenSearch migrations as a workflow."""


@app.command("version")
def version_command() -> None:
    """Print the version."""
    typer.echo(f"mactl {__version__}")
