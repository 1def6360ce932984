"""The names of the snapshots mactl takes, and why a state keeps the name it recorded.

A snapshot mactl takes is named after its source and entry, plus the tag of the state
that takes it (`mactl.state.state_tag`): `mactl-us_east-snap-3f2a9c1e`. Two states that
migrate from the same source into the same repository (`-var target=staging` and
`-var target=prod`, another region, another workspace) then never ask for the same name,
and each one deletes only its own snapshot on destroy. The default state's tag is empty.

A state that recorded a snapshot under an earlier name (before the tag, or with another
tag) keeps that name: `keep_recorded_snapshot_names` puts the recorded name back into the
snapshot stage and every stage that reads from it, so this rule never plans a replacement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from mactl.graph.stage import Stage

if TYPE_CHECKING:
    from mactl.graph.expand import StageGraph


def snapshot_name(source: str, entry: str, tag: str) -> str:
    """`mactl-<source>-<entry>[-<tag>]`, lower-case (snapshot names must be)."""
    base = f"mactl-{source}-{entry}".lower()
    return f"{base}-{tag}" if tag else base


def _untagged(name: str) -> str:
    base, sep, tag = name.rpartition("-")
    return base if sep and len(tag) == 8 and all(c in "0123456789abcdef" for c in tag) else name


def keep_recorded_snapshot_names(graph: StageGraph, recorded: Mapping[str, str]) -> StageGraph:
    """`graph` with each snapshot stage's recorded name (`recorded`: address → snapshotName)
    where it differs from the planned one only by the state tag; the same graph if none does."""
    renames: dict[str, str] = {}
    for address, old in recorded.items():
        stage = graph.stages.get(address)
        if stage is None or stage.type != "snapshot" or stage.inputs.get("existing"):
            continue
        new = stage.inputs.get("snapshotName")
        if isinstance(new, str) and old != new and _untagged(old) == _untagged(new):
            renames[new] = old
    if not renames:
        return graph
    stages = dict(graph.stages)
    for address, stage in graph.stages.items():
        name = stage.inputs.get("snapshotName")
        if isinstance(name, str) and name in renames:
            stages[address] = _renamed(stage, renames[name])
    return type(graph)(stages, graph.order)


def _renamed(stage: Stage, name: str) -> Stage:
    return replace(stage, inputs={**stage.inputs, "snapshotName": name})
