"""Config problems as data, and how they are worded for the user.

Loading collects every problem it finds (`ConfigIssue`: a user-facing path and a
message) instead of stopping at the first, then raises them together as one
`ConfigErrors`. Paths are always in the user's own spelling
(`source-migration-configurations[0].snapshot-and-migration-configs[1].indices.mode`),
never the canonical model's field names: the normaliser records where each canonical
node came from (`Origins`) and `issues_from_validation` maps pydantic's locations
back through it.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from mactl.errors import ConfigError

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where (a user-facing path; "" for the whole file) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigErrors(ConfigError):
    """Every problem found in one config, raised together so the user fixes them in one go."""

    def __init__(self, issues: Sequence[ConfigIssue], *, source: str | None = None, hint: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.issues) == 1:
            text = f"{where}{self.issues[0]}"
        else:
            lines = "\n".join(f"  - {issue}" for issue in self.issues)
            text = f"{where}{len(self.issues)} errors:\n{lines}"
        super().__init__(text, hint=hint)


def join_path(base: str, key: str | int) -> str:
    """`base` extended by a mapping key (`a.b`) or a list index (`a[0]`)."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or a list of the valid ones."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        # Case and separator slips (`snapshotrepository`, `max_speedup_factor`).
        folded = {o.lower().replace("-", "").replace("_", ""): o for o in options}
        hit = folded.get(word.lower().replace("-", "").replace("_", ""))
        close = [hit] if hit else []
    if close:
        return f" (did you mean '{close[0]}'?)"
    if options and len(options) <= 12:
        return " (expected one of: " + ", ".join(options) + ")"
    return ""


def unknown_key(path: str, key: str, allowed: Iterable[str]) -> ConfigIssue:
    return ConfigIssue(join_path(path, key), f"unknown key '{key}'{did_you_mean(key, allowed)}")


class Origins:
    """Where each canonical node came from: canonical location -> user-facing path.

    Only nodes the normaliser moved or renamed are recorded; everything beneath a
    recorded node keeps its key, so a location maps through its longest recorded prefix.
    """

    def __init__(self) -> None:
        self._map: dict[Loc, str] = {(): ""}

    def record(self, loc: Loc, user_path: str) -> None:
        self._map[loc] = user_path

    def user_path(self, loc: Sequence[str | int]) -> str:
        loc = tuple(loc)
        for cut in range(len(loc), -1, -1):
            base = self._map.get(loc[:cut])
            if base is not None:
                path = base
                for key in loc[cut:]:
                    path = join_path(path, key)
                return path
        raise AssertionError("the empty location is always recorded")


# --- pydantic errors -> issues -------------------------------------------------------

_MESSAGE_FIXES = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
}


def issues_from_validation(
    exc: ValidationError,
    model: type[BaseModel],
    origins: Origins,
    *,
    secrets: frozenset[str] = frozenset(),
) -> list[ConfigIssue]:
    """Turn pydantic's errors into issues with user paths and "did you mean" hints."""
    issues: list[ConfigIssue] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc, leaf_model = _walk(model, err["loc"])
        path = origins.user_path(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            allowed = _field_names(leaf_model) if leaf_model is not None else []
            message = f"unknown key '{key}'{did_you_mean(key, allowed)}"
        elif kind == "missing":
            message = _MESSAGE_FIXES["missing"]
        else:
            message = _clean(err["msg"])
            shown = _shown_input(err.get("input"), secrets)
            if shown is not None and kind not in ("value_error", "assertion_error"):
                message += f" (got {shown})"
        if (path, message) not in seen:
            seen.add((path, message))
            issues.append(ConfigIssue(path, message))
    return issues


_MODEL_TYPE = re.compile(r"a valid dictionary or instance of \w+|a valid dictionary")


def _clean(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    msg = _MODEL_TYPE.sub("a mapping (key: value)", msg)  # users write mappings, not classes
    return msg[:1].lower() + msg[1:] if msg else msg


def _shown_input(value: Any, secrets: frozenset[str]) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return repr(value) if value is not None else "null"
    if isinstance(value, str):
        if value in secrets or any(s and s in value for s in secrets):
            return "(sensitive)"
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return None


INTERNAL = "mactl_internal"


def _field_names(model: type[BaseModel]) -> list[str]:
    """The keys a user may write (fields marked internal are filled by the normaliser)."""
    names = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get(INTERNAL):
            continue
        names.append(info.alias or name)
    return names


def _walk(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[Loc, type[BaseModel] | None]:
    """Follow `loc` through the model's annotations.

    Returns the location without the tags pydantic inserts for unions (`log.kafka.topic`
    becomes `log.topic`) and the model owning the last key, for "did you mean".
    """
    kept: list[str | int] = []
    current: Any = model
    owner: type[BaseModel] | None = None
    for seg in loc:
        options = _models_in(current)
        if isinstance(seg, int):
            kept.append(seg)
            current = _item_type(current)
            continue
        if options:
            field_model = next((m for m in options if _lookup(m, seg) is not None), None)
            if field_model is not None:
                owner = field_model
                kept.append(seg)
                current = _lookup(field_model, seg)
                continue
            tagged = [m for m in options if _tag_matches(m, seg)]
            if tagged or _is_union_tag(seg, options):
                current = tagged[0] if tagged else current
                continue
            owner = options[0]
            kept.append(seg)
            current = None
            continue
        if _is_mapping(current):
            kept.append(seg)
            current = _item_type(current)
            continue
        # pydantic names union members in locations (`str`, `list[...]`): skip those.
        if seg in ("str", "int", "float", "bool") or "[" in seg or seg.startswith("function-"):
            continue
        kept.append(seg)
        current = None
    return tuple(kept), owner


def _lookup(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _tag_matches(model: type[BaseModel], seg: str) -> bool:
    for info in model.model_fields.values():
        ann = info.annotation
        if typing.get_origin(ann) is typing.Literal and seg in typing.get_args(ann):
            return True
    return False


def _is_union_tag(seg: str, options: list[type[BaseModel]]) -> bool:
    return len(options) > 1 and seg in {m.__name__ for m in options}


def _unwrap(ann: Any) -> list[Any]:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(ann)[0])
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(ann):
            out.extend(_unwrap(arg))
        return out
    return [ann]


def _models_in(ann: Any) -> list[type[BaseModel]]:
    return [a for a in _unwrap(ann) if isinstance(a, type) and issubclass(a, BaseModel)]


def _is_mapping(ann: Any) -> bool:
    return any(typing.get_origin(a) is dict for a in _unwrap(ann))


def _item_type(ann: Any) -> Any:
    for a in _unwrap(ann):
        origin = typing.get_origin(a)
        if origin in (list, tuple, set, frozenset):
            args = typing.get_args(a)
            return args[0] if args else None
        if origin is dict:
            args = typing.get_args(a)
            return args[1] if len(args) == 2 else None
    return None
