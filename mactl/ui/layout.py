"""The map's layout: Graphviz `dot` draws the stage graph left to right as SVG.

Laying out a DAG well (ranks, crossing reduction, edge routing) is what `dot` is for, so
the console does not do it by hand: it writes the graph in dot's language, runs the
`dot` program (Debian's `graphviz` package) once per graph shape, and keeps the SVG. The
nodes carry no status colour: the page colours them by class from the live statuses, so
one layout serves every refresh.

Past `GROUP_ABOVE` stages a drawing of every stage is neither fast nor readable; the map
then draws one node per group (a metadata or backfill stage's source, snapshot and
target) with its members' counts by status, and the page lists a group's stages on click.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mactl.errors import MactlError
from mactl.graph.expand import StageGraph

GROUP_ABOVE = 400
DOT_TIMEOUT_S = 60.0
# Types stamped out per index entry: grouped by their source, snapshot and target.
_PER_ENTRY_TYPES = frozenset({"metadata", "backfill"})


class LayoutError(MactlError):
    """`dot` is missing or failed."""


def require_dot() -> str:
    """The path of Graphviz's `dot`, or a one-line error naming the package to install."""
    found = shutil.which("dot")
    if found is None:
        raise LayoutError(
            "the console draws the map with Graphviz's `dot`, which is not installed",
            hint="install the Debian package graphviz (apt-get install graphviz)",
        )
    return found


@dataclass(frozen=True)
class MapNode:
    """One drawn node: a stage, or (grouped) a set of stages."""

    id: str  # the SVG element id
    label: str
    members: tuple[str, ...]
    stage_type: str
    approval: bool = False
    clone: bool = False


@dataclass
class StageMap:
    """The laid-out map: the SVG and which stages each node stands for."""

    svg: str
    nodes: list[MapNode]
    grouped: bool
    node_of: dict[str, str] = field(default_factory=dict)  # address → node id


def group_key(address: str, stage_type: str) -> str:
    """The group a stage is drawn in on a grouped map."""
    parts = address.split(".")
    if stage_type in _PER_ENTRY_TYPES and len(parts) > 4:
        return ".".join(parts[:4]) + ".*"
    return address


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(address: str, stage_type: str, count: int | None = None) -> str:
    rest = address[len(stage_type) + 1 :] if address.startswith(stage_type + ".") else address
    head = f"{stage_type} ×{count}" if count is not None else stage_type
    return f"{head}\n{rest}"


def nodes_for(graph: StageGraph, group_above: int = GROUP_ABOVE) -> tuple[list[MapNode], list[tuple[str, str]], bool]:
    """The nodes and edges to draw: one per stage, or one per group past `group_above` stages."""
    order = graph.topological()
    grouped = len(order) > group_above
    members: dict[str, list[str]] = {}
    for address in order:
        key = group_key(address, graph.stages[address].type) if grouped else address
        members.setdefault(key, []).append(address)
    ids = {key: f"n{i}" for i, key in enumerate(members)}
    key_of = {a: key for key, addrs in members.items() for a in addrs}
    nodes = []
    for key, addrs in members.items():
        first = graph.stages[addrs[0]]
        nodes.append(
            MapNode(
                id=ids[key],
                label=_label(key, first.type, len(addrs) if grouped and len(addrs) > 1 else None),
                members=tuple(addrs),
                stage_type=first.type,
                approval=any(graph.stages[a].approval_required for a in addrs),
                clone=all(graph.stages[a].clone_of for a in addrs),
            )
        )
    edges: set[tuple[str, str]] = set()
    for address in order:
        for dep in graph.stages[address].depends_on:
            if dep in key_of and key_of[dep] != key_of[address]:
                edges.add((ids[key_of[dep]], ids[key_of[address]]))
    return nodes, sorted(edges), grouped


def to_dot(nodes: Iterable[MapNode], edges: Iterable[tuple[str, str]]) -> str:
    """The graph in dot's language, left to right as the seed draws it."""
    lines = [
        "digraph mactl {",
        "  rankdir=LR; nodesep=0.25; ranksep=0.6;",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#9e9e9e",'
        ' fontname="Helvetica", fontsize=11];',
        '  edge [color="#888888", arrowsize=0.7];',
    ]
    for node in nodes:
        attrs = [f"id={_q(node.id)}", f"class={_q('stage type-' + node.stage_type)}", f"label={_q(node.label)}"]
        if node.approval:
            attrs.append("shape=hexagon")
        if node.clone:
            attrs += ["penwidth=3", f"class={_q('stage clone type-' + node.stage_type)}"]
        lines.append(f"  {node.id} [{', '.join(attrs)}];")
    for a, b in edges:
        lines.append(f"  {a} -> {b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_XML_HEAD = re.compile(r"^.*?(?=<svg)", re.S)


def run_dot(source: str) -> str:
    """SVG from `dot -Tsvg` (the XML prolog and doctype dropped: the SVG is inlined in a page)."""
    try:
        done = subprocess.run(
            [require_dot(), "-Tsvg"], input=source, capture_output=True, text=True, timeout=DOT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise LayoutError(f"Graphviz's dot took over {DOT_TIMEOUT_S:.0f}s to lay out the map") from None
    if done.returncode != 0:
        raise LayoutError(f"Graphviz's dot failed: {done.stderr.strip()[:300]}")
    return _XML_HEAD.sub("", done.stdout, count=1)


class MapCache:
    """One layout per graph shape: the page refreshes statuses, never the layout."""

    def __init__(self, group_above: int = GROUP_ABOVE) -> None:
        self.group_above = group_above
        self._cache: dict[str, StageMap] = {}

    def layout(self, graph: StageGraph) -> StageMap:
        nodes, edges, grouped = nodes_for(graph, self.group_above)
        source = to_dot(nodes, edges)
        key = hashlib.sha256(source.encode()).hexdigest()
        found = self._cache.get(key)
        if found is None:
            node_of = {a: n.id for n in nodes for a in n.members}
            found = StageMap(run_dot(source), nodes, grouped, node_of)
            self._cache = {key: found}  # keep only the current shape
        return found


def node_statuses(stage_map: StageMap, statuses: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """Per node, how many of its stages are in each status."""
    out: dict[str, dict[str, int]] = {}
    for node in stage_map.nodes:
        counts: dict[str, int] = {}
        for address in node.members:
            status = statuses.get(address, "pending")
            counts[status] = counts.get(status, 0) + 1
        out[node.id] = counts
    return out
