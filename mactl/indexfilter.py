"""The one index-filter syntax, resolved against a list of real index names.

A pattern is an exact name, a `*` wildcard (`logs-*`), or a regex written `re:...`
(matched against the whole name). A filter is a list of patterns with a mode: an
`include` filter keeps names matching any pattern, an `exclude` filter drops them.
A chain of filters (parent stage's first, then the stage's own) selects the names that
pass every filter. Snapshot, metadata and backfill stages all select indices this way,
so a name means the same thing everywhere. This module does no I/O.

Built-in exclusions (`.`-prefixed system/hidden indices and the like) are NOT applied
here silently: `split_builtin_exclusions` reports them so callers can list them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from mactl.errors import ConfigError
from mactl.schema.common import IndexFilter


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    if pattern.startswith("re:"):
        try:
            return re.compile(pattern[3:])
        except re.error as exc:
            raise ConfigError(f"index filter: bad regex '{pattern}': {exc}") from None
    return re.compile("".join(".*" if ch == "*" else re.escape(ch) for ch in pattern))


def matches(name: str, pattern: str) -> bool:
    """Does `name` match one pattern (exact, `*` wildcard or `re:` regex, whole name)?"""
    return _compile(pattern).fullmatch(name) is not None


def validate_filters(filters: Sequence[IndexFilter]) -> list[str]:
    """Plan-time problems with the patterns themselves (bad regexes, empty names)."""
    problems: list[str] = []
    for i, flt in enumerate(filters):
        if not flt.names:
            problems.append(f"indices[{i}].names is empty")
        problems.extend(f"indices[{i}]: {problem}" for problem in _problems_of(flt.names))
    return problems


# The problems of lists of names already checked, by identity (holding the list, so its
# id stays its own): typed inputs copied from a twin share their filters' lists.
_checked: dict[int, tuple[list[str], tuple[str, ...]]] = {}


def _problems_of(names: list[str]) -> tuple[str, ...]:
    found = _checked.get(id(names))
    if found is not None and found[0] is names and len(names) == len(found[0]):
        return found[1]
    if len(_checked) > 4096:
        _checked.clear()
    problems = _pattern_problems(tuple(names))
    if len(names) >= 32:
        _checked[id(names)] = (names, problems)
    return problems


@lru_cache(maxsize=1024)
def _pattern_problems(names: tuple[str, ...]) -> tuple[str, ...]:
    """The bad patterns among `names`, once per distinct list: a snapshot entry's filter
    of 2,000 names is checked again by every stage below it. Only a `re:` pattern can be
    bad (exact names and wildcards always compile)."""
    problems: list[str] = []
    for name in names:
        if name.startswith("re:"):
            try:
                _compile(name)
            except ConfigError as exc:
                problems.append(exc.message)
    return tuple(problems)


def passes(name: str, filters: Sequence[IndexFilter]) -> bool:
    """True when `name` passes every filter of the chain (an empty chain selects all)."""
    for flt in filters:
        hit = any(matches(name, p) for p in flt.names)
        if (flt.mode == "include") != hit:
            return False
    return True


def select(names: Iterable[str], filters: Sequence[IndexFilter]) -> list[str]:
    """The names that pass the chain, sorted."""
    return sorted(n for n in names if passes(n, filters))


def is_explicit(name: str, filters: Sequence[IndexFilter]) -> bool:
    """Was `name` asked for by an exact (non-wildcard, non-regex) include pattern?"""
    return any(flt.mode == "include" and name in flt.names for flt in filters)


@dataclass(frozen=True)
class Exclusion:
    """A name left out by a built-in rule, with the rule's reason (shown in plan and report)."""

    name: str
    reason: str


def builtin_exclusion_reason(name: str) -> str | None:
    """Why mactl leaves `name` out by default, or None.

    `.`-prefixed names are system or hidden indices (`.kibana`, `.tasks`, `.security`,
    `.opendistro-*`, `.plugins-*`) that belong to the cluster or its plugins: recreating
    them on the target clashes with what the target's own plugins create.
    """
    if name.startswith("."):
        return "system or hidden index (name starts with '.')"
    if name.startswith(("ilm-history-", "slm-history-")):
        return "Elasticsearch lifecycle history data stream"
    return None


def split_builtin_exclusions(names: Iterable[str], filters: Sequence[IndexFilter]) -> tuple[list[str], list[Exclusion]]:
    """Apply the chain, then the built-in exclusions, reporting what those dropped.

    A name the user listed exactly (not through a wildcard) is kept even when a built-in
    rule would drop it: an explicit ask wins.
    """
    kept: list[str] = []
    excluded: list[Exclusion] = []
    for name in select(names, filters):
        reason = builtin_exclusion_reason(name)
        if reason is not None and not is_explicit(name, filters):
            excluded.append(Exclusion(name, reason))
        else:
            kept.append(name)
    return kept, excluded
