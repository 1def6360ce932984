"""A plan file's big lists, stored once: split out on save, put back on load.

In the seed's shape every metadata and backfill stage holds the snapshot entry's
2,000-name filter, so a plan file that wrote each change's values as they are held
2 · 6,000 copies of it (328 MB at 12,008 stages) and reading it back made one Python
object per name per stage (2.9 GB). Here every list of at least `MIN_ITEMS` items in a
change's values is written once, in the file's `shared_values`, and `shared_refs` says
where it goes: `[change index, [field, key or position, ...], value index]`, the place
left `null` in the change. Nothing is in-band, so no value can be mistaken for a
reference; loading puts one shared object back in every place, as the planner had it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import orjson

from mactl.plan.definition import AttributeChange, Change

MIN_ITEMS = 64

Path = tuple[str | int, ...]


class SharedLists:
    """The big lists met while splitting changes, each once (by identity, then content)."""

    def __init__(self) -> None:
        self.values: list[list[Any]] = []
        self._by_id: dict[int, tuple[list[Any], int]] = {}  # holds the list: ids stay its own
        self._by_content: dict[bytes, int] = {}
        self._plain: dict[int, object] = {}  # containers known to hold no big list

    def index(self, value: list[Any]) -> int:
        found = self._by_id.get(id(value))
        if found is not None:
            return found[1]
        key = hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
        number = self._by_content.get(key)
        if number is None:
            number = self._by_content[key] = len(self.values)
            self.values.append(value)
        self._by_id[id(value)] = (value, number)
        return number

    def split(self, value: Any, path: Path, refs: list[tuple[Path, int]]) -> Any:
        """`value` with each big list in it replaced by None (copied along those paths only)."""
        kind = type(value)
        if kind is not dict and kind is not list:
            return value
        if id(value) in self._plain:
            return value
        if kind is list and len(value) >= MIN_ITEMS:
            refs.append((path, self.index(value)))
            return None
        out = value
        items = value.items() if kind is dict else enumerate(value)
        for key, item in items:
            new = self.split(item, (*path, key), refs)
            if new is not item:
                if out is value:
                    out = dict(value) if kind is dict else list(value)
                out[key] = new
        if out is value:
            self._plain[id(value)] = value
        return out


def split_changes(changes: Sequence[Change]) -> tuple[list[Change], list[list[Any]], list[list[Any]]]:
    """(changes with big lists left out, the lists, where each goes)."""
    shared = SharedLists()
    out: list[Change] = []
    refs_out: list[list[Any]] = []
    for number, change in enumerate(changes):
        refs: list[tuple[Path, int]] = []
        update: dict[str, Any] = {}
        for name in ("before", "after", "refreshed_outputs"):
            value = getattr(change, name)
            new = shared.split(value, (name,), refs)
            if new is not value:
                update[name] = new
        for name in ("attributes", "drift"):
            attrs: tuple[AttributeChange, ...] = getattr(change, name)
            new_attrs = tuple(_split_attribute(shared, a, (name, i), refs) for i, a in enumerate(attrs))
            if any(a is not b for a, b in zip(attrs, new_attrs, strict=True)):
                update[name] = new_attrs
        out.append(replace(change, **update) if update else change)
        refs_out.extend([number, list(path), index] for path, index in refs)
    return out, shared.values, refs_out


def _split_attribute(
    shared: SharedLists, attr: AttributeChange, path: Path, refs: list[tuple[Path, int]]
) -> AttributeChange:
    before = shared.split(attr.before, (*path, "before"), refs)
    after = shared.split(attr.after, (*path, "after"), refs)
    if before is attr.before and after is attr.after:
        return attr
    return replace(attr, before=before, after=after)


def restore(changes: list[Any], values: Any, refs: Iterable[Any]) -> None:
    """Put each shared list back where `refs` says, in the raw (parsed) changes; ValueError
    names what is wrong in a damaged file."""
    if not isinstance(values, list) or not all(isinstance(v, list) for v in values):
        raise ValueError("shared_values is not a list of lists")
    for n, ref in enumerate(refs):
        if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[1], list) and ref[1]):
            raise ValueError(f"shared_refs[{n}] is not [change, path, value]")
        number, path, index = ref
        if not (isinstance(number, int) and 0 <= number < len(changes)):
            raise ValueError(f"shared_refs[{n}]: no change {number!r}")
        if not (isinstance(index, int) and 0 <= index < len(values)):
            raise ValueError(f"shared_refs[{n}]: no shared value {index!r}")
        parent: Any = changes[number]
        for step in path[:-1]:
            parent = _step(parent, step, n)
        last = path[-1]
        _step(parent, last, n)  # the place must exist (it holds null)
        parent[last] = values[index]


def _step(container: Any, key: Any, n: int) -> Any:
    if isinstance(container, dict) and isinstance(key, str) and key in container:
        return container[key]
    if isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container):
        return container[key]
    raise ValueError(f"shared_refs[{n}]: no place {key!r}")
