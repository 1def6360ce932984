"""Build each stage's `inputs`: the JSON-able dict its provider's `Inputs` model accepts.

Inputs carry REAL secret values (a provider needs the password to connect); the paths
of those secrets are returned beside them so the planner, the renderers and the state
layer can mask them. Secret paths are dotted, list items by index (`transforms.0.template`).
Pieces shared by many stages (a cluster, a repository, a block's
options) are converted once and SHARED by every stage that uses them (each stage has
its own top-level dict): that is what keeps expanding twelve thousand stages cheap, and
it means stage inputs are read-only. Anything that needs to change one (masking,
planning) builds a new dict instead of editing in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel, SecretStr

from mactl.config.model import StageBlock, TargetConfig
from mactl.schema.common import IndexFilter, SnapshotRepository

_SECRET_MASK = b'"' + str(SecretStr("x")).encode() + b'"'

# Config-only keys of a block, never part of a stage's inputs.
BLOCK_ONLY = frozenset({"approval", "lifecycle", "name", "enabled", "existingSnapshot", "migrations"})


def jsonable(value: Any, path: str, secrets: set[str]) -> Any:
    """A plain JSON value for `value` (a python-mode model dump), revealing secrets.

    Every `SecretStr` found is replaced by its real value and its dotted path added to
    `secrets`.
    """
    if isinstance(value, dict):
        return {k: jsonable(v, f"{path}.{k}" if path else str(k), secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{path}.{i}" if path else str(i), secrets) for i, v in enumerate(value)]
    if isinstance(value, SecretStr):
        secrets.add(path)
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(by_alias=True), path, secrets)
    return value


class Piece:
    """A converted config fragment and the secret paths inside it (relative)."""

    __slots__ = ("value", "secrets")

    def __init__(self, value: Any, secrets: frozenset[str]) -> None:
        self.value = value
        self.secrets = secrets

    @classmethod
    def of(cls, model: BaseModel, *, exclude: Iterable[str] = ()) -> Piece:
        excluded = set(exclude) or None
        # Fast path: pydantic's own JSON-mode dump, unless it hides a secret (shown as
        # the SecretStr mask), in which case walk the python-mode dump to reveal it.
        dumped = model.model_dump(mode="json", by_alias=True, exclude=excluded)
        if _SECRET_MASK not in orjson.dumps(dumped):
            return cls(dumped, frozenset())
        secrets: set[str] = set()
        raw = model.model_dump(by_alias=True, exclude=excluded)
        return cls(jsonable(raw, "", secrets), frozenset(secrets))


def cluster_ref(cluster: TargetConfig) -> Piece:
    """The `ClusterRef` a provider receives: name, endpoint, auth, insecure."""
    return Piece.of(cluster, exclude=("snapshotRepository",))


def repository(repo: SnapshotRepository) -> Piece:
    return Piece.of(repo)


def filters(
    chain: Iterable[IndexFilter], shared: dict[int, tuple[IndexFilter, dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """The chain as JSON. With `shared` (one per expansion), a filter used by many stages
    (a snapshot entry's, in every stage below it) is converted once and shared."""
    if shared is None:
        return [{"names": list(f.names), "mode": f.mode} for f in chain]
    out = []
    for f in chain:
        found = shared.get(id(f))
        if found is None:
            found = shared[id(f)] = (f, {"names": list(f.names), "mode": f.mode})  # holds `f`: its id stays its own
        out.append(found[1])
    return out


def block_options(block: StageBlock) -> Piece:
    """A block's user-settable inputs (provider fields), without config-only keys.

    An unset `executor` (local worker processes) is left out, so that stages recorded before
    executors existed plan no change."""
    exclude = BLOCK_ONLY & set(type(block).model_fields)
    if getattr(block, "executor", True) is None:
        exclude = exclude | {"executor"}
    return Piece.of(block, exclude=exclude)


class InputsBuilder:
    """Assembles one stage's inputs from pieces, tracking secret paths as it goes."""

    __slots__ = ("inputs", "secrets")

    def __init__(self) -> None:
        self.inputs: dict[str, Any] = {}
        self.secrets: set[str] = set()

    def put(self, key: str, piece: Piece | Any) -> InputsBuilder:
        if isinstance(piece, Piece):
            self.inputs[key] = piece.value
            self.secrets.update(f"{key}.{p}" if p else key for p in piece.secrets)
        else:
            self.inputs[key] = piece
        return self

    def merge(self, piece: Piece) -> InputsBuilder:
        """Add every top-level key of a block's options (its secrets keep their paths)."""
        self.inputs.update(piece.value)
        self.secrets.update(piece.secrets)
        return self

    def mark_sensitive_values(self, sensitive: frozenset[str]) -> None:
        """Add the path of every string that contains a sensitive variable's value."""
        if sensitive:
            _mark(self.inputs, "", sensitive, self.secrets)


def _mark(value: Any, path: str, sensitive: frozenset[str], out: set[str]) -> None:
    if isinstance(value, str):
        if value in sensitive or any(s in value for s in sensitive):
            out.add(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _mark(item, f"{path}.{key}" if path else str(key), sensitive, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _mark(item, f"{path}.{i}" if path else str(i), sensitive, out)
