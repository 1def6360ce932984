"""Vectors a target rebuilds from its index: compare them as the target can hold them.

OpenSearch 3 keeps `knn_vector` values out of the stored `_source` of a k-NN index and
rebuilds them from the vector index when a document is read
(`index.knn.derived_source.enabled`, on by default from 3.0). That index holds float32s,
so a vector the source holds as `0.39668047465078016` reads back as `0.39668047`: every
document of a real embedding model would differ from the snapshot's `_source` although
the target holds exactly what it can. The sample check therefore compares those fields,
and only those, as float32s: each value is rounded to the nearest float32 on both sides
and they must agree within one unit in the last place (the target rounds the decimal text
straight to float32, Python reads it as a double first, so the two roundings may part by
one step). A vector with any value further off, an element missing or added, and every
other field still fail as before.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

DERIVED_SETTING = "index.knn.derived_source.enabled"


def derived_vector_paths(client: OpenSearch, index: str) -> frozenset[str]:
    """Dotted paths of the `knn_vector` fields `index` rebuilds in `_source`; empty when it keeps them."""
    try:
        got = client.indices.get(index=index, params={"flat_settings": "true", "include_defaults": "true"})
    except TransportError:
        return frozenset()
    body: dict[str, Any] = next(iter(got.values()), {}) if isinstance(got, dict) else {}
    settings = {**(body.get("defaults") or {}), **(body.get("settings") or {})}
    if str(settings.get(DERIVED_SETTING, "false")).lower() != "true":
        return frozenset()
    if str(settings.get("index.knn", "false")).lower() != "true":
        return frozenset()
    properties = (body.get("mappings") or {}).get("properties") or {}
    return frozenset(path for path, spec in _fields(properties) if spec.get("type") == "knn_vector")


def _fields(properties: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Mapping[str, Any]]]:
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        path = f"{prefix}{name}"
        yield path, spec
        if isinstance(spec.get("properties"), Mapping):  # objects and nested alike
            yield from _fields(spec["properties"], f"{path}.")


def same_source(expected: Any, actual: Any, float32_paths: frozenset[str], path: str = "") -> bool:
    """`expected == actual`, except that values at `float32_paths` are compared as float32s."""
    if not float32_paths:
        return bool(expected == actual)
    if path in float32_paths and _is_vector(expected) and _is_vector(actual):
        return len(expected) == len(actual) and all(_same_float32(a, b) for a, b in zip(expected, actual, strict=True))
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            return False
        prefix = f"{path}." if path else ""
        return all(same_source(expected[k], actual[k], float32_paths, f"{prefix}{k}") for k in expected)
    if isinstance(expected, list) and isinstance(actual, list):  # arrays of objects keep the field's path
        return len(expected) == len(actual) and all(
            same_source(e, a, float32_paths, path) for e, a in zip(expected, actual, strict=True)
        )
    return bool(expected == actual)


def _is_vector(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)


def _same_float32(a: float, b: float) -> bool:
    if a == b:
        return True
    try:
        bits_a, bits_b = (int(struct.unpack("<i", struct.pack("<f", x))[0]) for x in (a, b))
    except (OverflowError, struct.error):
        return False
    return (bits_a < 0) == (bits_b < 0) and abs(bits_a - bits_b) <= 1
