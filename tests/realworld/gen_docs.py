"""Documents that fit a mapping: a small deterministic generator for the real-world corpus test.

`Generator(mapping, seed).doc(i)` walks the mapping's properties (objects, nested, leaves
of the usual types) and returns a document with a seeded subset of the leaves filled, so
a 20,000-field metricbeat mapping gives documents of a few dozen fields while every type
still shows up across the documents. Nested fields get 1-3 child objects. Field aliases,
disabled objects and multi-fields are left alone (they take no value of their own).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "québec romeo sierra tango uniform victor whiskey xray yankee zulu 東京 naïve"
).split()
BASE_TIME = datetime(2024, 3, 1, tzinfo=UTC)
MAX_LEAVES = 30


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    mapping: dict[str, Any]


@dataclass(frozen=True)
class Nested:
    path: tuple[str, ...]
    leaves: tuple[Leaf, ...]


def _walk(properties: dict[str, Any], prefix: tuple[str, ...]) -> tuple[list[Leaf], list[Nested]]:
    leaves: list[Leaf] = []
    nested: list[Nested] = []
    for name, field in sorted(properties.items()):
        if not isinstance(field, dict):
            continue
        path = (*prefix, name)
        ftype = field.get("type", "object" if "properties" in field else None)
        if ftype == "nested":
            inner, deeper = _walk(field.get("properties") or {}, ())
            inner += [Leaf(n.path, {"type": "_nested_inline"}) for n in deeper]  # keep it one level deep
            nested.append(Nested(path, tuple(inner)))
        elif ftype == "object":
            if field.get("enabled") is False:
                continue
            inner, deeper = _walk(field.get("properties") or {}, path)
            leaves += inner
            nested += deeper
        elif ftype in (None, "alias"):
            continue
        else:
            leaves.append(Leaf(path, field))
    return leaves, nested


def _date(rng: random.Random, fmt: str | None) -> Any:
    when = BASE_TIME + timedelta(seconds=rng.randrange(0, 90 * 86400), milliseconds=rng.randrange(1000))
    first = (fmt or "strict_date_optional_time").split("||")[0]
    if first == "epoch_second":
        return int(when.timestamp())
    if first == "epoch_millis":
        return int(when.timestamp() * 1000)
    if first == "yyyy-MM-dd HH:mm:ss":
        return when.strftime("%Y-%m-%d %H:%M:%S")
    if first == "strict_date_time_no_millis":
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def value_for(mapping: dict[str, Any], rng: random.Random) -> Any:
    """One value of a leaf field's type (None for a type the generator leaves alone)."""
    ftype = mapping.get("type")
    if ftype in ("keyword", "constant_keyword", "wildcard"):
        return f"{rng.choice(WORDS)}-{rng.randrange(100)}"
    if ftype in ("text", "match_only_text"):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 8)))
    if ftype == "long":
        return rng.randrange(-(2**40), 2**40)
    if ftype == "integer":
        return rng.randrange(-(2**31), 2**31)
    if ftype == "short":
        return rng.randrange(-(2**15), 2**15)
    if ftype == "byte":
        return rng.randrange(-128, 128)
    if ftype in ("double", "float", "half_float"):
        return round(rng.uniform(-1000, 1000), 3)
    if ftype == "scaled_float":
        return round(rng.uniform(0, 1000), 2)
    if ftype == "date":
        return _date(rng, mapping.get("format"))
    if ftype == "boolean":
        return rng.random() < 0.5
    if ftype == "ip":
        if rng.random() < 0.2:
            return f"2001:db8::{rng.randrange(1, 0xFFFF):x}"
        return ".".join(str(rng.randrange(1, 255)) for _ in range(4))
    if ftype == "geo_point":
        lat, lon = round(rng.uniform(-89, 89), 5), round(rng.uniform(-179, 179), 5)
        return rng.choice([{"lat": lat, "lon": lon}, [lon, lat], f"{lat},{lon}"])
    if ftype in ("double_range", "float_range", "long_range", "integer_range"):
        low = rng.randrange(0, 100)
        return {"gte": low, "lte": low + rng.randrange(1, 50)}
    if ftype == "_nested_inline":
        return {"k": rng.choice(WORDS)}
    return None


def _put(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            return  # a leaf already took this name (dotted names in the mapping)
        node = nxt
    if path[-1] not in node:
        node[path[-1]] = value


class Generator:
    def __init__(self, mapping: dict[str, Any], seed: str) -> None:
        self.leaves, self.nested = _walk(mapping.get("properties") or {}, ())
        self.seed = seed

    def doc(self, i: int, version: int = 0) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}/{i}/{version}")
        doc: dict[str, Any] = {}
        chosen = self.leaves if len(self.leaves) <= MAX_LEAVES else rng.sample(self.leaves, MAX_LEAVES)
        for leaf in chosen:
            value = value_for(leaf.mapping, rng)
            if value is None:
                continue
            if leaf.mapping.get("type") in ("keyword", "long", "integer") and rng.random() < 0.1:
                value = [value, value_for(leaf.mapping, rng)]  # arrays of values too
            _put(doc, leaf.path, value)
        for nest in self.nested:
            children = []
            for _ in range(rng.randrange(1, 4)):
                child: dict[str, Any] = {}
                for leaf in nest.leaves[:MAX_LEAVES]:
                    value = value_for(leaf.mapping, rng)
                    if value is not None and rng.random() < 0.8:
                        _put(child, leaf.path, value)
                children.append(child)
            _put(doc, nest.path, children)
        return doc
