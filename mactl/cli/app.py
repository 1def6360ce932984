"""The typer application object and the error guard every command runs under."""

from __future__ import annotations

import os
import sys

import typer

try:  # newer typer runs on its own bundled copy of click: catch that copy's errors, or a
    # bad option would escape as a traceback
    from typer._click.exceptions import ClickException
except ImportError:  # older typer uses the click package itself
    from click import ClickException  # type: ignore[assignment]

from mactl.errors import MactlError

app = typer.Typer(
    name="mactl",
    help="Plan and apply Elasticsearch/OpenSearch → OpenSearch migrations as a workflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def run_guarded(application: typer.Typer, argv: list[str] | None = None) -> int:
    """Run the CLI, turning `MactlError` into a message and an exit code, no traceback."""
    try:
        # Without standalone mode click returns the code of a `typer.Exit(n)` instead of raising.
        result = application(args=argv, standalone_mode=False)
    except MactlError as err:
        typer.secho(f"Error: {_masked(err.message)}", fg="red", err=True)
        if err.hint:
            typer.echo(f"  hint: {_masked(err.hint)}", err=True)
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
    except OSError as err:
        if os.environ.get("MACTL_DEBUG"):
            raise
        # A file or folder mactl could not read or write that no command guarded itself:
        # still one line naming it, never a traceback.
        where = f"{err.filename}: " if err.filename is not None else ""
        reason = err.strerror or type(err).__name__
        typer.secho(f"Error: {_masked(where + reason)}", fg="red", err=True)
        return 1
    except Exception as err:  # noqa: BLE001 - the last guard: a bug, but still no traceback
        if os.environ.get("MACTL_DEBUG"):
            raise
        detail = _masked(" ".join(str(err).split()))[:300]
        typer.secho(f"Error: internal error ({type(err).__name__}): {detail}", fg="red", err=True)
        typer.echo("  hint: this is a bug in mactl; run again with MACTL_DEBUG=1 for the traceback", err=True)
        return 70
    return result if isinstance(result, int) else 0


def _masked(text: str) -> str:
    """`text` with any password in a URL masked: error messages quote endpoints."""
    from mactl.state.masking import mask_url_password

    return mask_url_password(text)[0]


def fail(message: str, hint: str | None = None) -> None:
    """Raise a user-facing error from a command."""
    raise MactlError(message, hint=hint)


__all__ = ["app", "run_guarded", "fail", "sys"]
