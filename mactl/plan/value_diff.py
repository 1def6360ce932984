"""Where two input dicts differ, as DeepDiff says, without walking what is equal.

DeepDiff walks every value it is given in Python. In the seed's shape each metadata and
backfill stage holds the snapshot entry's 2,000-name filter, so diffing 12,000 stages
walked that list 12,000 times, changed or not. DeepDiff's answer decomposes: a mapping's
keys are diffed one by one, and so are the items of two equally long lists of lists or
mappings (it pairs them in order). `changed_levels` follows those splits itself, skips a
part whose JSON is the same on both sides (compared in C, the desired side's JSON made
once per shared object), and hands DeepDiff only the smallest parts that differ, each
once per distinct pair of values (a filter change that every stage inherits is diffed
once). Its answer is DeepDiff's on the whole, path for path.
"""

from __future__ import annotations

from typing import Any

import orjson
from deepdiff import DeepDiff

#: One changed path: its parts (keys and list positions), the value before and after
#: (`None` where there is no such side: an added or removed item).
Level = tuple[tuple[str | int, ...], Any, Any]

_ABSENT = object()


class ValueDiffer:
    """Diffs many pairs of inputs whose desired side shares objects (one per plan)."""

    def __init__(self) -> None:
        self._json: dict[int, tuple[object, bytes]] = {}  # desired-side JSON, by identity
        self._leaves: dict[tuple[bytes, bytes], list[Level]] = {}

    def changed_levels(self, before: dict[str, Any], after: dict[str, Any]) -> list[Level]:
        found: list[Level] = []
        self._dict(before, after, (), found)
        return found

    def _after_json(self, value: Any) -> bytes:
        if not isinstance(value, (dict, list)):
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        known = self._json.get(id(value))
        if known is None:
            known = self._json[id(value)] = (value, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
        return known[1]

    def _dict(
        self, before: dict[str, Any], after: dict[str, Any], path: tuple[str | int, ...], out: list[Level]
    ) -> None:
        for key in (*before, *(k for k in after if k not in before)):
            b, a = before.get(key, _ABSENT), after.get(key, _ABSENT)
            if b is _ABSENT:
                out.append(((*path, key), None, a))
            elif a is _ABSENT:
                out.append(((*path, key), b, None))
            else:
                self._value(b, a, (*path, key), out)

    def _value(self, before: Any, after: Any, path: tuple[str | int, ...], out: list[Level]) -> None:
        # `==` runs in C and stops at the first difference; equal values are then compared
        # as JSON too, which tells 1 from 1.0 and true (DeepDiff reports a type change).
        if before == after and orjson.dumps(before, option=orjson.OPT_SORT_KEYS) == self._after_json(after):
            return
        if type(before) is dict and type(after) is dict:
            self._dict(before, after, path, out)
            return
        key = (orjson.dumps(before, option=orjson.OPT_SORT_KEYS), self._after_json(after))
        leaves = self._leaves.get(key)
        if leaves is None:
            if (
                type(before) is list
                and type(after) is list
                and len(before) == len(after)
                and not (_basic(before) and _basic(after))
            ):
                # DeepDiff pairs the items of lists that are not all plain values in order.
                for i, (b, a) in enumerate(zip(before, after, strict=True)):
                    self._value(b, a, (*path, i), out)
                return
            leaves = self._leaves[key] = _deepdiff({"_": before}, {"_": after})
        out.extend(((*path, *parts[1:]), b, a) for parts, b, a in leaves)


def _basic(values: list[Any]) -> bool:
    """DeepDiff diffs a list of plain hashable values with difflib, not item by item."""
    return all(isinstance(v, (str, int, float, bool, bytes)) or v is None for v in values)


def _deepdiff(before: dict[str, Any], after: dict[str, Any]) -> list[Level]:
    diff = DeepDiff(before, after, view="tree", verbose_level=2)
    found: list[Level] = []
    for levels in diff.values():
        for level in levels:
            parts = level.path(output_format="list")
            if parts:
                found.append((tuple(parts), _present(level.t1), _present(level.t2)))
    return found


def _present(value: Any) -> Any:
    return None if type(value).__name__ == "NotPresent" else value
