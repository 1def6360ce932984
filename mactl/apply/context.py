"""Build the `StageContext` a provider gets for one change of the plan.

Inputs come from the config (the graph), or, for a stage that left the config, from its
record with its clusters resolved by name from the config (`mactl.credentials`: the
state holds no credentials) and other secrets put back (`mactl.apply.secrets`); upstream outputs, prior outputs and
the checkpoint come from the state, as the plan decided (`Change.from_checkpoint`). The
context carries the stage's own folder (`Workdir.stage_dir`, made here) and the config's
folder, where a relative path in the inputs (a transform's `file:`) starts, the same rule
as `plan --evaluate` and `mactl worker`. Its `progress`, `checkpoint` and `log` callbacks
go to the walk's hooks and to the state recorder.

It decides nothing (whether or when the stage runs) and writes nothing to the state but
through `ctx.checkpoint`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from mactl.apply.hooks import Hook
from mactl.apply.recorder import StateRecorder
from mactl.apply.secrets import SecretRestorer
from mactl.credentials import with_credentials
from mactl.graph.expand import StageGraph
from mactl.plan.definition import Change
from mactl.providers import registry
from mactl.providers.base import Progress, StageContext
from mactl.state.workdir import Workdir

Phase = Literal["rollback", "apply"]


def inputs_model(stage_type: str, raw: Mapping[str, Any]) -> BaseModel:
    """The provider's `Inputs` for `raw`; a removed stage's masked inputs may not validate: best effort."""
    model: type[BaseModel] = registry.get_provider(stage_type).Inputs
    try:
        return model.model_validate(raw)
    except ValidationError:
        return model.model_construct(**raw)


class ContextBuilder:
    def __init__(
        self,
        graph: StageGraph,
        recorder: StateRecorder,
        hooks: Hook,
        *,
        workdir: Workdir,
        config_dir: Path,
        secrets: Collection[str] = (),
    ) -> None:
        self.graph = graph
        self.recorder = recorder
        self.hooks = hooks
        self.workdir = workdir
        self.config_dir = config_dir.absolute()  # worker processes may start elsewhere
        self.restorer = SecretRestorer(graph, secrets)

    def build(self, change: Change, phase: Phase) -> StageContext[BaseModel]:
        address, stage_type = change.address, change.type
        record = self.recorder.record(address)
        stage = self.graph.stages.get(address)
        raw = (
            stage.inputs
            if stage is not None
            else self.restorer.restore(with_credentials(record.inputs if record else {}, self.graph.clusters))
        )
        deps = stage.depends_on if stage is not None else tuple(record.depends_on if record else ())
        upstream = {}
        for dep in deps:
            dep_record = self.recorder.record(dep)
            if dep_record is not None:
                upstream[dep] = dep_record.outputs
        stage_dir = self.workdir.stage_dir(address)
        stage_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        resume = phase == "apply" and record is not None and change.from_checkpoint
        ctx = StageContext(
            address=address,
            type=stage_type,
            inputs=inputs_model(stage_type, raw),
            # rollback needs what apply recorded (what was created) to undo exactly that
            prior_outputs=(
                record.outputs
                if record is not None and record.outputs and (change.action == "update" or phase == "rollback")
                else None
            ),
            upstream=upstream,
            # a rollback sees the checkpoint too: what an interrupted run recorded it was
            # about to create is what it must undo
            checkpoint_data=(record.checkpoint if (resume or phase == "rollback") and record is not None else None),
            workdir=stage_dir,
            config_dir=self.config_dir,
            # a partially changed stage runs only the instances that change
            instances=change.instance_scope if phase == "apply" else None,
        )
        hooks, recorder = self.hooks, self.recorder

        def progress(report: Progress) -> None:
            hooks.stage_progress(address, report)

        def checkpoint(data: dict[str, Any]) -> None:
            recorder.checkpoint(address, stage_type, data)

        def log(message: str) -> None:
            hooks.stage_log(address, message)

        ctx.progress, ctx.checkpoint, ctx.log = progress, checkpoint, log
        ctx.target_password = self._target_password
        return ctx

    def _target_password(self, name: str) -> str | None:
        ref = self.graph.clusters.targets.get(name) or {}
        auth = ref.get("auth")
        password = auth.get("password") if isinstance(auth, dict) else None
        return password if isinstance(password, str) else None
