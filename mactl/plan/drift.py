"""Drift: a stage's facts as recorded against its facts as `read` observed them.

The rule (see `mactl.providers.base.Fact`): a provider names the facts of its result
(`index logs`, `proxy es-0`, `index_template logs`); only those are compared, so status
(timestamps, health flags, counters) never makes a change. Facts are compared by name,
and lists of named items inside a fact's value by their `name` (or `id`), so a missing
item reads as missing, never as a rename of the item after it. A difference in a fact
marked `redo` means the stage's result is gone: the planner replaces the stage, which
redoes everything built on it; any other difference is repaired by applying the stage
again (an update in place).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepdiff import DeepDiff

from mactl.plan.definition import AttributeChange
from mactl.providers.base import Fact

ABSENT = "absent"


@dataclass(frozen=True)
class Finding:
    """One fact that differs: what the plan shows, and whether the stage must be redone."""

    change: AttributeChange
    redo: bool

    @property
    def reason(self) -> str:
        """`index logs missing on the target`: the fact's name and, for a word, what was observed."""
        after = self.change.after
        if after == ABSENT:
            return f"{self.change.path} gone"
        return f"{self.change.path} {after}" if isinstance(after, str) else self.change.path


def keyed(value: Any) -> Any:
    """`value` with every list of named items (dicts with a unique `name`, else `id`) made
    a dict keyed by that name, recursively, so items compare by name, not position."""
    if isinstance(value, Mapping):
        return {k: keyed(v) for k, v in value.items()}
    if isinstance(value, list):
        for key in ("name", "id"):
            if value and all(isinstance(v, Mapping) and isinstance(v.get(key), str) for v in value):
                names = [v[key] for v in value]
                if len(set(names)) == len(names):
                    return {n: keyed(v) for n, v in zip(names, value)}
        return [keyed(v) for v in value]
    return value


def compare(recorded: Mapping[str, Fact], observed: Mapping[str, Fact]) -> list[Finding]:
    """Every difference between two sets of facts, in name order."""
    before = {name: keyed(f.value) for name, f in recorded.items()}
    after = {name: keyed(f.value) for name, f in observed.items()}
    if before == after:
        return []
    found: list[Finding] = []
    diff = DeepDiff(before, after, view="tree", verbose_level=2)
    for levels in diff.values():
        for level in levels:
            parts = [str(p) for p in level.path(output_format="list")]
            if not parts:
                continue
            name = parts[0]
            fact = recorded.get(name) or observed.get(name)
            found.append(
                Finding(
                    AttributeChange(path=".".join(parts), before=_present(level.t1), after=_present(level.t2)),
                    redo=fact is not None and fact.redo,
                )
            )
    found.sort(key=lambda f: f.change.path)
    return found


def _present(value: Any) -> Any:
    return ABSENT if type(value).__name__ == "NotPresent" else value
