"""Big values that many changes of a plan hold, found once so a renderer shows each once.

In the seed's shape a snapshot entry's filter lists 2,000 index names, and every metadata
and backfill stage below it carries that list (6 · 2,000 stages): printed in every stage, a
plan would be hundreds of MB of the same names, and rendering it would cost time per
stage that grows with the list. Here a list or mapping of at least `MIN_ITEMS` items that
appears in more than one shown place is a *shared value*: the text plan prints it in full
once, numbered, before the actions, and where a stage holds it the value reads
`(shared value #1: 2000 items)`. Nothing is hidden: every value is in the plan, in full,
exactly once. A big value shown only once, and every small one, is printed where it is,
as before.

Finding them is linear: stage inputs share such values by identity (`mactl.graph.inputs`),
so what lies under a list or mapping is looked at once per object, not once per stage. A
plan read back from a file holds equal copies instead; those are told apart by content
(each copy is serialized once, in C), so the same values are shared either way.

Values are already masked in the plan; this module only reads them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from mactl.plan.definition import Change

#: A list or mapping with at least this many items is big enough to be shown once.
MIN_ITEMS = 64  # as `mactl.masking` hashes such a list on its own and a plan file stores it once


@dataclass
class SharedValue:
    """One big value and where it is shown: `number` is what references print."""

    number: int
    text: str  # the value's JSON (sorted keys), as the plan shows values
    items: int
    places: int  # how many shown values hold it (a stage's attribute, a before, an after)
    first: str  # the address of the first change that holds it

    @property
    def reference(self) -> str:
        return f"(shared value #{self.number}: {self.items} items)"


def shown_values(change: Change) -> Iterator[Any]:
    """The values the text plan prints for `change` (see `mactl.plan.render_text`)."""
    if change.action in ("create", "import"):
        yield from (change.after or {}).values()
    elif change.action in ("rollback", "forget"):
        yield from (change.before or {}).values()
    else:
        for attr in (*change.attributes, *change.drift):
            yield attr.before
            yield attr.after


class SharedValues:
    """The shared values of some changes, and their values as text with references.

    Build it from the changes a renderer will show, then ask `text(value)` for each value
    it prints; `values` lists the shared ones in the order they first appear.
    """

    def __init__(self, changes: Iterable[Change], *, min_items: int = MIN_ITEMS) -> None:
        self.min_items = min_items
        # id → (the object, the ids of the big values under it): held, so ids stay their own.
        self._under: dict[int, tuple[object, tuple[int, ...]]] = {}
        # id of a big value → (the list or mapping, its content key); content key → its JSON
        self._big: dict[int, tuple[list[Any] | dict[str, Any], bytes]] = {}
        self._texts: dict[bytes, bytes] = {}
        self._by_content: dict[bytes, SharedValue] = {}
        self._rendered: dict[int, tuple[object, str]] = {}
        found: dict[bytes, SharedValue] = {}
        for change in changes:
            for value in shown_values(change):
                if type(value) is not dict and type(value) is not list:
                    continue  # most values: nothing to look into
                for big in self._bigs_under(value):
                    obj, key = self._big[big]
                    entry = found.get(key)
                    if entry is None:
                        entry = found[key] = SharedValue(0, self._texts[key].decode(), len(obj), 0, change.address)
                    entry.places += 1
        number = 0
        for key, entry in found.items():
            if entry.places > 1:
                number += 1
                entry.number = number
                self._by_content[key] = entry
        self.values: list[SharedValue] = list(self._by_content.values())
        self._texts.clear()  # the shared ones' JSON is in `values`; the rest is not needed

    def _bigs_under(self, value: Any) -> tuple[int, ...]:
        """The ids of the big values in `value`, outermost first (none inside another)."""
        if not isinstance(value, (dict, list)):
            return ()
        known = self._under.get(id(value))
        if known is not None:
            return known[1]
        if len(value) >= self.min_items:
            text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
            key = hashlib.blake2b(text, digest_size=16).digest()
            self._texts.setdefault(key, text)
            self._big[id(value)] = (value, key)
            found: tuple[int, ...] = (id(value),)
        else:
            items = value.values() if isinstance(value, dict) else value
            found = tuple(big for item in items for big in self._bigs_under(item))
        self._under[id(value)] = (value, found)
        return found

    def text(self, value: Any) -> str:
        """`value` as compact JSON with sorted keys, each shared value in it a reference."""
        kind = type(value)
        if (kind is not dict and kind is not list) or not self.values:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        done = self._rendered.get(id(value))
        if done is not None:
            return done[1]
        bigs = self._bigs_under(value)
        if not bigs or not any(self._big[b][1] in self._by_content for b in bigs):
            text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        elif id(value) in self._big:
            text = self._by_content[self._big[id(value)][1]].reference
        elif isinstance(value, dict):
            parts = (f"{orjson.dumps(k).decode()}:{self.text(value[k])}" for k in sorted(value))
            text = "{" + ",".join(parts) + "}"
        else:
            text = "[" + ",".join(self.text(item) for item in value) + "]"
        self._rendered[id(value)] = (value, text)
        return text
