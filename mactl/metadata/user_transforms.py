"""The user's own metadata transforms (`metadata.transforms`), run after the version ones.

Each transform sees one item as `item` ({name, kind, body}) plus `source_version` and
`target_version`, and returns either a whole item ({name?, kind?, body}) — which may
rename it — or just the new body. Returning nothing (or `DROP` in a template) drops the
item; the report lists it as skipped by the transform. Errors name the item, the
transform and, for templates, the template line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mactl.metadata.items import Item
from mactl.metadata.version_transforms import ItemFailed
from mactl.schema.common import TransformSpec
from mactl.transforms import DROP, TransformError, compile_transform

_ITEM_KEYS = {"name", "kind", "body"}


class UserTransforms:
    """A compiled chain; `run(item, ...)` returns the new item, or None when dropped."""

    def __init__(self, specs: Sequence[TransformSpec], *, base_dir: Path | None = None) -> None:
        self._chain = [(spec_label(s, i), compile_transform(s, base_dir=base_dir)) for i, s in enumerate(specs)]

    def __bool__(self) -> bool:
        return bool(self._chain)

    def run(self, item: Item, *, source_version: str, target_version: str) -> tuple[Item | None, list[str]]:
        applied: list[str] = []
        current = item
        for label, fn in self._chain:
            context = {"item": current.as_context(), "source_version": source_version, "target_version": target_version}
            try:
                result = fn(context)
            except TransformError as exc:
                raise ItemFailed(f"{item.kind} '{item.name}': {exc.message}") from None
            if result is DROP:
                applied.append(f"{label}: dropped the item")
                return None, applied
            new = _as_item(result, current, label)
            if new.body != current.body or new.name != current.name:
                applied.append(f"{label}" + (f": renamed to {new.name}" if new.name != current.name else ""))
            current = new
        return current, applied


def spec_label(spec: TransformSpec, index: int) -> str:
    what = spec.callable or spec.file or "inline template"
    return f"user transform #{index + 1} ({what})"


def _as_item(result: Any, current: Item, label: str) -> Item:
    if not isinstance(result, dict):
        raise ItemFailed(
            f"{current.kind} '{current.name}': {label} returned {type(result).__name__}, not a JSON object"
        )
    if "body" in result and set(result) <= _ITEM_KEYS:
        kind = result.get("kind", current.kind)
        if kind != current.kind:
            raise ItemFailed(
                f"{current.kind} '{current.name}': {label} changed the kind to '{kind}'; that is not allowed"
            )
        name = result.get("name", current.name)
        if not isinstance(name, str) or not name:
            raise ItemFailed(f"{current.kind} '{current.name}': {label} returned an empty or non-string name")
        if not isinstance(result["body"], dict):
            raise ItemFailed(f"{current.kind} '{current.name}': {label} returned a body that is not a JSON object")
        return Item(current.kind, name, result["body"])
    return Item(current.kind, current.name, result)
