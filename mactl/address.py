"""Stage and instance addresses, parsed and written in one place.

A stage address is dotted (`metadata.es.snap.os2.m0`). An instance address adds one key
in brackets, like Terraform's `for_each` instances: `metadata.es.snap.os2.m0["rw-pmc"]`,
`backfill.es.snap.os2.m0.b0["rw-pmc"]`. The key of an index is its name on the target;
any other metadata item's key is `kind:name` (`["index_template:logs"]`,
`["component_template:base"]`, `["legacy_template:old"]`, `["pipeline:geoip"]`), which
cannot be mistaken for an index: `:` is not allowed in index names. A backfill's keys are
the index names it fills, so the metadata instance and the backfill instance of one index
share a key.

Keys are written as JSON strings (`["a\\"b"]`); when a shell ate the quotes, the bare form
`[rw-pmc]` is read too. A `*` in the stage part or the key is a wildcard.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass

from mactl.errors import PlanError

INDEX_KIND = "index"


@dataclass(frozen=True)
class Address:
    """A parsed address: the stage's, and the instance key when one was given."""

    stage: str
    key: str | None = None

    def __str__(self) -> str:
        return self.stage if self.key is None else instance_address(self.stage, self.key)

    @property
    def is_instance(self) -> bool:
        return self.key is not None

    def matches_stage(self, stage: str) -> bool:
        return stage == self.stage or ("*" in self.stage and fnmatch.fnmatchcase(stage, self.stage))

    def matches_key(self, key: str) -> bool:
        """True for every key when this addresses a whole stage."""
        if self.key is None:
            return True
        return key == self.key or ("*" in self.key and fnmatch.fnmatchcase(key, self.key))


def instance_address(stage: str, key: str) -> str:
    """`stage["key"]`, the key written as a JSON string."""
    return f"{stage}[{json.dumps(key, ensure_ascii=False)}]"


def parse_address(text: str, *, flag: str = "address") -> Address:
    """`metadata.x.m0` or `metadata.x.m0["rw-pmc"]` (or `[rw-pmc]`) → `Address`.

    A malformed bracket is a `PlanError` naming `flag` (the option or argument it came from).
    """
    text = text.strip()
    if not text.endswith("]"):
        if "[" in text or "]" in text:
            raise PlanError(f'{flag} {text}: an instance key goes in brackets at the end, like ADDR["rw-pmc"]')
        return Address(text)
    start = text.find("[")
    if start <= 0:
        raise PlanError(f'{flag} {text}: an instance address is a stage address then ["key"]')
    stage, inner = text[:start], text[start + 1 : -1]
    if inner.startswith('"'):
        try:
            key = json.loads(inner)
        except ValueError:
            raise PlanError(f'{flag} {text}: the instance key is not a valid quoted string, like ["rw-pmc"]') from None
        if not isinstance(key, str):
            raise PlanError(f'{flag} {text}: the instance key must be a string, like ["rw-pmc"]')
    else:
        key = inner
    if not key or "[" in stage or "]" in stage:
        raise PlanError(f'{flag} {text}: an instance address is a stage address then one ["key"]')
    return Address(stage, key)


def instance_key(kind: str, name: str) -> str:
    """The instance key of one metadata item: an index's name, else `kind:name`."""
    return name if kind == INDEX_KIND else f"{kind}:{name}"


def split_key(key: str) -> tuple[str, str]:
    """`instance_key`'s inverse: (kind, name)."""
    kind, sep, name = key.partition(":")
    return (kind, name) if sep else (INDEX_KIND, key)


def keys_matching(addresses: Iterable[Address], stage: str) -> list[Address]:
    """The addresses in `addresses` that name `stage` or one of its instances."""
    return [a for a in addresses if a.matches_stage(stage)]
