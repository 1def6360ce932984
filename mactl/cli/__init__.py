"""The `mactl` command line: typer commands that parse arguments and call the engine.

Each command group lives in a module of its own here and registers itself on `app`.
Commands do no work of their own beyond parsing, calling into config/graph/plan/apply/
state, and rendering. Errors a user can cause (`MactlError`) print as one or two lines
and exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import sys

from mactl.cli.app import app, run_guarded

# Command modules register themselves on `app` when imported: one import per group. The
# order is the order `mactl --help` lists them in, so it is kept by hand.
# isort: off
from mactl.cli import version_cmd  # noqa: F401
from mactl.cli import capture_cmd  # noqa: F401
from mactl.cli import state_cmd  # noqa: F401
from mactl.cli import metadata_cmd  # noqa: F401
from mactl.cli import backfill_cmd  # noqa: F401
from mactl.cli import snapshot_cmd  # noqa: F401
from mactl.cli import config_cmd  # noqa: F401
from mactl.cli import engine_cmd  # noqa: F401
from mactl.cli import import_cmd  # noqa: F401
from mactl.cli import status_cmd  # noqa: F401
from mactl.cli import ui_cmd  # noqa: F401

# isort: on


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_guarded(app))
