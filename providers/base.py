"""The provider protocol and the context handed to it.

A provider owns one stage type. The engine asks it four things:
- `Inputs`: the pydantic model a stage's `inputs` must satisfy (checked at plan time),
  defined in `mactl.schema.<type>`; the provider is generic in it, so `ctx.inputs` and
  `validate(inputs)` arrive typed;
- `replace_on`: which top-level input fields force replacement (roll back, then redo);
  a change to any other field is an update in place;
- `validate(inputs)`: extra plan-time checks that need no network;
- `preflight(inputs, ctx)` (optional, default: none): what the stage needs to run that
  can be checked before anything is undone (clusters reachable, snapshot readable);
  `apply` runs it for every stage it will run, and refuses before any rollback;
- `apply(ctx)` / `rollback(ctx)` / `read(ctx)`: do, undo and observe the real thing;
- `facts(outputs)`: the drift-relevant facts in a stage's outputs (see `Fact`);
- instances (optional): a stage type whose work splits into keyed parts (a metadata
  stage's items, a backfill's indices) sets `instance_fields`, the inputs whose change
  may touch only some parts, and `plan_instances(ctx)`: key → digest of each part as the
  inputs now want it (None: not knowable before apply). Its apply records the same
  digests under `outputs["instances"]` (`INSTANCES_OUTPUT_KEY`), and, when the engine
  passes `ctx.instances` (key → create / replace / rollback), does only those parts.

`apply` is called for both create and update; `ctx.prior_outputs` tells which. A long
stage calls `ctx.progress(...)` as it goes and `ctx.checkpoint(data)` whenever it has
made durable progress, so that after a crash `ctx.checkpoint_data` lets it resume.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel

from mactl.errors import ProviderNotAvailable
from mactl.schema.stage import Progress, ProgressFn

__all__ = [
    "BaseProvider",
    "CheckpointFn",
    "Fact",
    "INSTANCES_OUTPUT_KEY",
    "InputsT",
    "LogFn",
    "PreflightContext",
    "Progress",
    "ProgressFn",
    "Provider",
    "StageContext",
]

CheckpointFn = Callable[[dict[str, Any]], None]
# Where a stage with instances records them in its outputs: key → {"digest", "status", ...}.
INSTANCES_OUTPUT_KEY = "instances"
LogFn = Callable[[str], None]

# The stage type's inputs model (`mactl.schema.<type>`): a provider sees its own, typed.
InputsT = TypeVar("InputsT", bound=BaseModel)


@dataclass
class StageContext(Generic[InputsT]):
    """Everything a provider may use while running one stage.

    `upstream` maps each dependency's address to its recorded outputs (the snapshot
    stage's name and uuid reach the metadata stage this way). `workdir` is a folder of
    this stage's own under the state's working directory, for logs and dead letters.
    `config_dir` is the config file's folder: a relative path in the inputs (a
    transform's `file:`) starts there, wherever mactl runs from.
    """

    address: str
    type: str
    inputs: InputsT
    prior_outputs: Mapping[str, Any] | None
    upstream: Mapping[str, Mapping[str, Any]]
    checkpoint_data: Mapping[str, Any] | None
    workdir: Path
    config_dir: Path = field(default_factory=Path.cwd)
    progress: ProgressFn = lambda _p: None
    checkpoint: CheckpointFn = lambda _d: None
    log: LogFn = lambda _m: None
    cancelled: threading.Event = field(default_factory=threading.Event)
    # key → "create" | "replace" | "rollback": the only instances this run touches (a
    # partially changed stage); None: the whole stage.
    instances: Mapping[str, str] | None = None
    # The password the config gives the target of this name now, for a provider that must
    # reach a target its own inputs do not name (a switchover draining every replay of its
    # source): neither the state nor a stage's files ever hold one.
    target_password: Callable[[str], str | None] = lambda _name: None

    def upstream_of_type(self, stage_type: str) -> list[Mapping[str, Any]]:
        """Outputs of the dependencies whose address starts with `stage_type.`."""
        return [out for addr, out in self.upstream.items() if addr.split(".", 1)[0] == stage_type]


@dataclass(frozen=True)
class Fact:
    """One drift-relevant fact of a stage's real-world result, e.g. `index logs: present`.

    Refresh computes a stage's facts twice with the provider's `facts(outputs)`: from the
    outputs the state recorded and from the outputs `read` observed, and compares them
    by name. Only facts are compared: the rest of the outputs (timestamps, health flags,
    running counters, log positions) is status and never shows as drift. `value` is a
    small JSON value; `redo` says what a difference means: True when the stage's result
    is gone and only redoing the stage (a replacement, which also redoes everything built
    on it) brings it back; False when applying the stage again repairs it in place.
    """

    value: Any
    redo: bool = False


@dataclass
class PreflightContext:
    """What `Provider.preflight` may use. Nothing in it may be changed.

    `upstream` holds the recorded outputs of the stage's dependencies; `redone` the
    stage's ancestors that this run creates, updates or replaces first (their outputs,
    e.g. a snapshot, do not exist yet, so do not check them). `probes` is shared by every
    stage of one preflight, so each cluster is asked once.
    """

    address: str
    upstream: Mapping[str, Mapping[str, Any]]
    redone: frozenset[str]
    config_dir: Path
    timeout_s: float = 5.0
    probes: dict[str, str | None] = field(default_factory=dict)

    def redoes(self, stage_type: str) -> bool:
        """True when this run (re)makes an ancestor of type `stage_type` before this stage."""
        return any(addr.split(".", 1)[0] == stage_type for addr in self.redone)


class Provider(Protocol[InputsT]):
    """What the engine needs from a stage type. See the module docstring."""

    type: ClassVar[str]
    Inputs: builtins.type[InputsT]  # (`type` is the stage type name in here)
    replace_on: ClassVar[frozenset[str]]
    available: ClassVar[bool]
    instance_fields: ClassVar[frozenset[str]]

    def validate(self, inputs: InputsT) -> list[str]: ...

    def plan_instances(self, ctx: StageContext[InputsT]) -> dict[str, str] | None: ...

    def preflight(self, inputs: InputsT, ctx: PreflightContext) -> list[str]: ...

    def apply(self, ctx: StageContext[InputsT]) -> dict[str, Any]: ...

    def rollback(self, ctx: StageContext[InputsT]) -> None: ...

    def read(self, ctx: StageContext[InputsT]) -> dict[str, Any] | None: ...

    def facts(self, outputs: Mapping[str, Any]) -> dict[str, Fact]: ...


class BaseProvider(Generic[InputsT]):
    """Defaults for the optional parts of the protocol.

    Subclasses (`class SnapshotProvider(BaseProvider[SnapshotInputs])`) set `type`,
    `Inputs` and `replace_on`, and override `apply` and `rollback`. `read` defaults to
    "what the state says is still true", i.e. no drift, and `facts` to every top-level
    output (a provider whose `read` observes something declares its own). A provider whose apply is not
    written yet leaves `available = False`; the engine then refuses to apply before
    starting anything, naming the stage type.
    """

    type: ClassVar[str]
    Inputs: builtins.type[InputsT]
    replace_on: ClassVar[frozenset[str]] = frozenset()
    available: ClassVar[bool] = True
    instance_fields: ClassVar[frozenset[str]] = frozenset()

    def validate(self, inputs: InputsT) -> list[str]:
        return []

    def plan_instances(self, ctx: StageContext[InputsT]) -> dict[str, str] | None:
        """key → digest of each instance the inputs want; None: known only after apply."""
        return None

    def preflight(self, inputs: InputsT, ctx: PreflightContext) -> list[str]:
        return []

    def apply(self, ctx: StageContext[InputsT]) -> dict[str, Any]:
        raise ProviderNotAvailable(f"stage type '{self.type}' cannot be applied yet")

    def rollback(self, ctx: StageContext[InputsT]) -> None:
        raise ProviderNotAvailable(f"stage type '{self.type}' cannot be rolled back yet")

    def read(self, ctx: StageContext[InputsT]) -> dict[str, Any] | None:
        return dict(ctx.prior_outputs) if ctx.prior_outputs is not None else None

    def facts(self, outputs: Mapping[str, Any]) -> dict[str, Fact]:
        return {key: Fact(value) for key, value in outputs.items()}
