"""`mactl import ADDR [ID]`: adopt what already exists as a stage of the config, like `terraform import`.

The same as an `import` block applied alone: the plan for that one stage must be only
its import (what it builds on already complete), the provider checks that what exists
is what the stage would create (and says what differs), and the stage is then recorded
complete, owning it: a rollback or destroy deletes it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mactl.cli.app import app
from mactl.cli.config_cmd import ConfigPathOpt, LockTakeoverOpt, NoPythonTransformsOpt, VarFileOpt, VarOpt, lock_state
from mactl.cli.engine_cmd import LockTimeoutOpt, _emit, _open, _render, _walk, make_plan
from mactl.errors import PlanError


@app.command("import")
def import_command(
    address: Annotated[str, typer.Argument(help="The stage that adopts what exists.", metavar="ADDR")],
    import_id: Annotated[
        str | None,
        typer.Argument(
            help="What to adopt (a snapshot's name); by default what the stage's inputs name.", metavar="ID"
        ),
    ] = None,
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    lock_timeout: LockTimeoutOpt = "0s",
    lock_takeover_stale: LockTakeoverOpt = False,
) -> None:
    """Adopt what already exists (a snapshot; target indices, templates, aliases, pipelines) as ADDR."""
    from mactl.apply.walker import check_available
    from mactl.plan.builder import PlanOptions

    session = _open(config, var, var_file)
    options = PlanOptions(targets=[address], imports={address: import_id})
    with lock_state(session.backend, "import", lock_timeout, lock_takeover_stale):
        doc = session.backend.read()
        if doc is not None and address in doc.stages:
            raise PlanError(
                f"import {address}: the state already has this stage",
                hint=f"forget it first with `mactl state rm {address}` to import it again",
            )
        plan = make_plan(session, options, doc)
        others = [c for c in plan.actionable() if c.address != address]
        if others:
            listed = ", ".join(f"{c.address} ({c.action})" for c in others[:5])
            raise PlanError(
                f"import {address}: it builds on stages that are not complete: {listed}",
                hint="apply (or import) those first",
            )
        _emit(_render(plan, False, False))
        check_available(plan)
        code = _walk(session, plan, doc, 1, "import")
    raise typer.Exit(code)
