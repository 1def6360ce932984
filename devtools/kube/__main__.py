"""`python -m devtools.kube` (what `scripts/kube` runs): build, up, down, status, env."""

from __future__ import annotations

import sys
import time

import typer

from devtools.kube import cluster
from devtools.local.errors import LocalServiceError

cli = typer.Typer(
    name="kube",
    help="A local Kubernetes API server, controller manager and process-running node, without Docker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _layout() -> cluster.Layout:
    return cluster.Layout(cluster.runtime_dir())


@cli.command()
def build() -> None:
    """Build kube-apiserver and kube-controller-manager (cached per version)."""
    took = cluster.build()
    where = cluster.bin_dir()
    typer.echo(
        f"built {cluster.VERSION} in {took:.0f}s into {where}" if took else f"{cluster.VERSION} cached in {where}"
    )


@cli.command()
def up(timeout: float = typer.Option(120.0, help="Seconds to wait for the API server.")) -> None:
    """Build if needed, start etcd, the API server, the controller manager and the node."""
    began = time.monotonic()
    layout = _layout()
    cluster.up(layout, timeout=timeout)
    typer.echo(f"kube {cluster.VERSION} up in {time.monotonic() - began:.0f}s; KUBECONFIG={layout.kubeconfig}")


@cli.command()
def down() -> None:
    """Stop the node (and its pods' processes), the controller manager, the API server and etcd."""
    for name, how in cluster.down(_layout()).items():
        typer.echo(f"{name}: {how}")


@cli.command()
def status() -> None:
    for name, how in cluster.status(_layout()).items():
        typer.echo(f"{name}: {how}")


@cli.command()
def env() -> None:
    """Export lines for the tests: `eval "$(scripts/kube env)"`."""
    for line in cluster.env_lines(_layout()):
        typer.echo(line)


def main() -> int:
    try:
        cli(standalone_mode=False)
    except LocalServiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
