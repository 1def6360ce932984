"""Per-document transforms: the user's chain applied to one snapshot document.

A transform sees `_index`, `_id`, `_routing`, `_source` (and `_type` for pre-7 indices)
and returns the document to write: an object with any of those keys (missing keys keep
their value), or DROP. Compilation and error reporting are `mactl.transforms`'s job;
this module only defines the document shape and how results fold into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mactl.schema.common import TransformSpec
from mactl.transforms import DROP, TransformError, compile_chain

_KEYS = ("_index", "_id", "_routing", "_source")


@dataclass(frozen=True)
class TargetDoc:
    """A document as it will be written: where, under which id and routing, with what source."""

    index: str
    id: str
    routing: str | None
    source: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"_index": self.index, "_id": self.id, "_routing": self.routing, "_source": self.source}


def _rebuild(result: Any, context: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise TransformError(
            f"a document transform must render an object with _index/_id/_routing/_source, got {type(result).__name__}"
        )
    unknown = set(result) - set(_KEYS) - {"_type"}
    if unknown:
        raise TransformError(
            f"a document transform rendered unknown keys {sorted(unknown)} (allowed: {', '.join(_KEYS)})"
        )
    merged = dict(context)
    merged.update(result)
    return merged


class DocumentTransformer:
    """Runs the compiled chain on one document; `None` chain means identity (fast path)."""

    def __init__(self, specs: Sequence[TransformSpec], *, base_dir: Path | None = None) -> None:
        self._chain = compile_chain(specs, base_dir=base_dir) if specs else None

    @property
    def is_identity(self) -> bool:
        return self._chain is None

    def apply(
        self, index: str, doc_id: str, routing: str | None, source: dict[str, Any], doc_type: str | None = None
    ) -> TargetDoc | None:
        """The document to write, or None when the chain dropped it."""
        context: dict[str, Any] = {"_index": index, "_id": doc_id, "_routing": routing, "_source": source}
        if doc_type is not None:
            context["_type"] = doc_type
        if self._chain is None:
            return TargetDoc(index, doc_id, routing, source)
        merged: list[dict[str, Any]] = [context]

        def fold(result: Any, ctx: dict[str, Any]) -> dict[str, Any]:
            merged[0] = _rebuild(result, ctx)
            return merged[0]

        if self._chain(context, fold) is DROP:
            return None
        final = merged[0]
        new_source = final["_source"]
        if not isinstance(new_source, dict):
            raise TransformError(
                f"a document transform rendered a _source that is not an object ({type(new_source).__name__})"
            )
        routing_out = final.get("_routing")
        return TargetDoc(
            str(final["_index"]), str(final["_id"]), None if routing_out in (None, "") else str(routing_out), new_source
        )


def load_source(raw: bytes) -> dict[str, Any]:
    source: dict[str, Any] = orjson.loads(raw)
    return source
