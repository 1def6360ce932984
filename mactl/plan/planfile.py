"""`-out FILE`: save a plan, load it back, and check it still fits the world.

A plan file holds the plan exactly as shown (every secret masked), the variables used
(sensitive ones masked, their names listed), the config path and digest, and the state
lineage and serial it was computed from. It never holds a secret, so applying it
re-derives the real inputs from the config: non-sensitive variables come from the file,
sensitive ones must be supplied again (`-var`, `-var-file` or `MACTL_VAR_name`). The
re-derived inputs, masked, must hash to the saved config digest, and the state must
still be at the saved lineage and serial; otherwise the plan is stale and refused.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from mactl.errors import PlanError
from mactl.plan.definition import Change, Plan
from mactl.plan.planfile_values import restore, split_changes
from mactl.state.document import StateDocument

MAGIC = "mactl-plan"
# 2: each change carries the walker's decisions (`gated`, `from_checkpoint`, `forget_only`).
# 3: big lists are stored once (`shared_values`, `shared_refs`: `mactl.plan.planfile_values`).
FILE_VERSION = 3
# The oldest version this mactl still reads (a version 2 file has no shared lists).
OLDEST_FILE_VERSION = 2


def save_plan(plan: Plan, path: Path) -> None:
    """Write the plan atomically (temp file + rename), readable only by its owner."""
    changes, shared_values, shared_refs = split_changes(plan.changes)
    data = {
        "format": MAGIC,
        "file_version": FILE_VERSION,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "workspace": plan.workspace,
        "config_path": plan.config_path,
        "config_digest": plan.config_digest,
        "variables": plan.variables,
        "sensitive_variables": plan.sensitive_variables,
        "sensitive_from_config": plan.sensitive_from_config,
        "mode": plan.mode,
        "refreshed": plan.refreshed,
        "options": plan.options,
        "warnings": plan.warnings,
        "stage_count": plan.stage_count,
        "moves": plan.moves,
        # orjson writes the frozen dataclasses as `Change.to_dict` would, without its deep
        # copy of every value (at 12,000 stages holding a 2,000-name filter: 20 s, 700 MB).
        "changes": changes,
        "shared_values": shared_values,
        "shared_refs": shared_refs,
    }
    blob = orjson.dumps(data)
    if path.is_dir():
        raise PlanError(f"cannot write the plan file {path}: it is a folder", hint="-out takes a file name")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(blob)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as err:
        if temp.parent.is_dir():
            temp.unlink(missing_ok=True)
        raise PlanError(f"cannot write the plan file {path}: {err.strerror or err}") from None


def check_plan_path(path: Path) -> None:
    """Refuse a `-out` path the plan could not be saved to, naming it."""
    if not str(path) or str(path) == ".":
        raise PlanError("-out: give a file name for the plan")
    if path.is_dir():
        raise PlanError(f"-out {path}: it is a folder", hint="-out takes a file name")
    if not path.parent.is_dir():
        raise PlanError(f"-out {path}: the folder {path.parent} does not exist")


def load_plan(path: Path) -> Plan:
    try:
        if path.exists() and not path.is_file():
            raise PlanError(f"cannot read the plan file {path}: it is not a regular file")
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise PlanError(f"{path} is not a mactl plan file: it is larger than {MAX_PLAN_BYTES // 2**20} MB")
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise PlanError(f"plan file {path} does not exist") from None
    except OSError as err:
        raise PlanError(f"cannot read the plan file {path}: {err.strerror or err}") from None
    except orjson.JSONDecodeError as err:
        raise PlanError(f"{path} is not a mactl plan file: {err}") from None
    if not isinstance(raw, dict) or raw.get("format") != MAGIC:
        raise PlanError(f"{path} is not a mactl plan file (made with `mactl plan -out FILE`)")
    if not isinstance(raw.get("file_version", 0), int):
        raise PlanError(f"plan file {path} is damaged: file_version is not a number")
    if raw.get("file_version", 0) > FILE_VERSION:
        raise PlanError(f"{path} was written by a newer mactl (plan file version {raw['file_version']})")
    if raw.get("file_version", 0) < OLDEST_FILE_VERSION:
        # Its changes lack the decisions the walker now takes from the plan (approval gates
        # among them): applying it with defaults could pass a gate.
        raise PlanError(
            f"{path} was written by an older mactl (plan file version {raw.get('file_version', 0)})",
            hint="make the plan again with `mactl plan -out FILE`",
        )
    try:
        _check_fields(raw)
        changes = raw["changes"]
        if not isinstance(changes, list):
            raise TypeError("changes is not a list")
        refs = raw.get("shared_refs", [])
        if not isinstance(refs, list):
            raise TypeError("shared_refs is not a list")
        restore(changes, raw.get("shared_values", []), refs)
        return Plan(
            changes=[_change(c, i) for i, c in enumerate(changes)],
            lineage=raw["lineage"],
            serial=raw["serial"],
            workspace=raw.get("workspace", "default"),
            config_path=raw["config_path"],
            config_digest=raw["config_digest"],
            variables=raw.get("variables", {}),
            sensitive_variables=raw.get("sensitive_variables", []),
            sensitive_from_config=raw.get("sensitive_from_config", []),
            mode=raw.get("mode", "normal"),
            refreshed=raw.get("refreshed", True),
            options=raw.get("options", {}),
            warnings=raw.get("warnings", []),
            stage_count=raw.get("stage_count", 0),
            moves=raw.get("moves", {}),
        )
    except KeyError as err:
        raise PlanError(f"plan file {path} is damaged: {err} is missing") from None
    except (TypeError, ValueError) as err:
        raise PlanError(f"plan file {path} is damaged: {' '.join(str(err).split())[:300]}") from None


MAX_PLAN_BYTES = 512 * 1024 * 1024

# The plan file's top-level fields and the types they must have (None allowed where noted).
_FIELDS: dict[str, tuple[type, ...]] = {
    "lineage": (str, type(None)),
    "serial": (int,),
    "workspace": (str,),
    "config_path": (str,),
    "config_digest": (str,),
    "variables": (dict,),
    "sensitive_variables": (list,),
    "sensitive_from_config": (list,),
    "mode": (str,),
    "refreshed": (bool,),
    "options": (dict,),
    "warnings": (list,),
    "stage_count": (int,),
    "moves": (dict,),
}
_MODES = ("normal", "destroy", "refresh-only")


def _check_fields(raw: dict[str, Any]) -> None:
    for name, types in _FIELDS.items():
        if name in raw and not isinstance(raw[name], types):
            raise TypeError(f"{name} has the wrong type ({type(raw[name]).__name__})")
    if raw.get("mode", "normal") not in _MODES:
        raise ValueError(f"mode {str(raw.get('mode'))[:40]!r} is not one of {', '.join(_MODES)}")
    for key in ("sensitive_variables", "sensitive_from_config"):
        if not all(isinstance(n, str) for n in raw.get(key, [])):
            raise TypeError(f"{key} must list names")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.get("moves", {}).items()):
        raise TypeError("moves must map addresses to addresses")


_CHANGE_FIELDS = frozenset(f.name for f in dataclasses.fields(Change))


@functools.cache
def _change_adapter() -> TypeAdapter[Change]:
    return TypeAdapter(Change)


def _change(data: Any, index: int) -> Change:
    """One change, its fields checked against `Change`'s types: a hand-edited file fails here."""
    from pydantic import ValidationError

    if isinstance(data, dict):
        unknown = sorted(set(data) - _CHANGE_FIELDS)
        if unknown:
            raise ValueError(f"changes[{index}] has unknown field(s) {', '.join(str(u)[:40] for u in unknown[:3])}")
    try:
        return _change_adapter().validate_python(data, strict=False)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"changes[{index}].{where}: {first['msg']}") from None


def non_sensitive_variables(plan: Plan) -> dict[str, Any]:
    return {k: v for k, v in plan.variables.items() if k not in plan.sensitive_variables}


def check_sensitive_supplied(
    plan: Plan, var_args: Sequence[str], var_files: Sequence[Path], env: Mapping[str, str]
) -> None:
    """Every sensitive variable the plan used must be given again: it is not in the file."""
    from mactl.config.variables import ENV_PREFIX

    given = {arg.split("=", 1)[0].strip() for arg in var_args}
    for file in var_files:
        try:
            import yaml

            data = yaml.safe_load(Path(file).read_text())
            if isinstance(data, dict):
                given |= set(data)
        except (OSError, yaml.YAMLError):
            pass  # the config loader reports unreadable var files itself
    from_config = set(plan.sensitive_from_config)
    missing = [
        name
        for name in plan.sensitive_variables
        if name not in given and f"{ENV_PREFIX}{name}" not in env and name not in from_config
    ]
    if missing:
        names = ", ".join(missing)
        raise PlanError(
            f"the plan was made with sensitive variable(s) {names}, whose values are not stored in plan files",
            hint=f"supply them again: -var {missing[0]}=… or the environment variable MACTL_VAR_{missing[0]}",
        )


def check_fresh(plan: Plan, doc: StateDocument | None, config_digest: str, where: str) -> None:
    """Refuse a plan whose state or config moved since it was made, saying which."""
    lineage = doc.lineage if doc is not None and (doc.serial or doc.stages) else None
    serial = doc.serial if doc is not None else 0
    if plan.lineage is not None and lineage is not None and plan.lineage != lineage:
        raise PlanError(
            f"the plan is stale: it was made for state lineage {plan.lineage}, but {where} has lineage {lineage}",
            hint="this plan belongs to another state (workspace?); run `mactl plan` again",
        )
    if plan.lineage is not None and lineage is None:
        raise PlanError(
            f"the plan is stale: it was made for state lineage {plan.lineage}, but {where} has no state now"
        )
    if serial != plan.serial:
        raise PlanError(
            f"the plan is stale: the state moved from serial {plan.serial} to {serial} since it was made",
            hint="someone applied or changed the state meanwhile; run `mactl plan` again",
        )
    if config_digest != plan.config_digest:
        raise PlanError(
            "the plan is stale: the config (or a variable) changed since it was made",
            hint="run `mactl plan -out FILE` again",
        )
