"""Draw a `StageGraph` as mermaid (the seed's language), Graphviz dot, or JSON.

`colors` maps addresses to a class name: the planner passes planned actions
(`create`, `update`, `replace`, `rollback`, `noop`), the status view stage statuses
(`complete`, `failed`, `pending`, …). Each class used gets a colour and a legend entry;
unknown class names get colours from a fixed palette in name order, so output is
stable. Stages stamped out for a 2nd+ target (`clone_of` set) are drawn as the seed
draws them: gray fill, thick border (with colours on, only the thick border). Approval
gates are drawn as hexagons. Nothing here decides anything: it only draws.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Literal

from mactl.graph.expand import StageGraph

Format = Literal["mermaid", "dot", "json"]
FORMATS: tuple[str, ...] = ("mermaid", "dot", "json")

# class -> (fill, stroke)
KNOWN_STYLES: dict[str, tuple[str, str]] = {
    "create": ("#d4edda", "#2e7d32"),
    "update": ("#fff3cd", "#b8860b"),
    "replace": ("#ffe0b2", "#e65100"),
    "rollback": ("#f8d7da", "#c62828"),
    "noop": ("#eeeeee", "#9e9e9e"),
    "read": ("#e3f2fd", "#1565c0"),
    "import": ("#e0f2f1", "#00695c"),
    "complete": ("#d4edda", "#2e7d32"),
    "complete_with_errors": ("#fff3cd", "#b26a00"),
    "running": ("#e3f2fd", "#1565c0"),
    "pending": ("#ffffff", "#9e9e9e"),
    "failed": ("#f8d7da", "#c62828"),
    "tainted": ("#ffe0b2", "#e65100"),
    "rolling_back": ("#f8d7da", "#c62828"),  # a rollback cut short: as alarming as a failure
    "awaiting_approval": ("#ede7f6", "#5e35b1"),
    "left_manual": ("#fce4ec", "#ad1457"),
    "rolled_back": ("#eeeeee", "#616161"),
}
PALETTE: tuple[tuple[str, str], ...] = (
    ("#e0f7fa", "#00838f"),
    ("#f3e5f5", "#6a1b9a"),
    ("#f1f8e9", "#558b2f"),
    ("#fff8e1", "#ff8f00"),
    ("#e8eaf6", "#283593"),
    ("#efebe9", "#4e342e"),
)
CLONE_FILL, CLONE_STROKE, CLONE_WIDTH = "#ddd", "#333", 4
CLONE_LEGEND = "clone: stamped out for another target, kept in sync"


def render_graph(graph: StageGraph, fmt: str = "mermaid", colors: Mapping[str, str] | None = None) -> str:
    if fmt == "mermaid":
        return _mermaid(graph, colors)
    if fmt == "dot":
        return _dot(graph, colors)
    if fmt == "json":
        return _json(graph, colors)
    raise ValueError(f"unknown graph format {fmt!r} (expected one of {', '.join(FORMATS)})")


def styles_for(classes: set[str]) -> dict[str, tuple[str, str]]:
    """The (fill, stroke) of each class name, known ones first, the rest from the palette."""
    out: dict[str, tuple[str, str]] = {}
    extra = 0
    for name in sorted(classes):
        if name in KNOWN_STYLES:
            out[name] = KNOWN_STYLES[name]
        else:
            out[name] = PALETTE[extra % len(PALETTE)]
            extra += 1
    return out


def _used_classes(graph: StageGraph, colors: Mapping[str, str] | None) -> dict[str, str]:
    if not colors:
        return {}
    return {addr: cls for addr, cls in colors.items() if addr in graph.stages}


# --- mermaid -----------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _node_ids(order: list[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for addr in order:
        base = _UNSAFE.sub("_", addr)
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        ids[addr] = candidate
    return ids


def _class_id(name: str) -> str:
    return "c_" + _UNSAFE.sub("_", name)


def _mermaid(graph: StageGraph, colors: Mapping[str, str] | None) -> str:
    order = graph.topological()
    ids = _node_ids(order)
    classes = _used_classes(graph, colors)
    lines = ["flowchart TD"]
    for addr in order:
        stage = graph.stages[addr]
        label = addr + ("<br/>approval required" if stage.approval_required else "")
        shape = ('{{"', '"}}') if stage.approval_required else ('["', '"]')
        lines.append(f"    {ids[addr]}{shape[0]}{label}{shape[1]}")
    for addr in order:
        for dep in sorted(graph.stages[addr].depends_on):
            lines.append(f"    {ids[dep]} --> {ids[addr]}")
    clones = [addr for addr in order if graph.stages[addr].clone_of]
    styles = styles_for(set(classes.values()))
    for name, (fill, stroke) in styles.items():
        lines.append(f"    classDef {_class_id(name)} fill:{fill},stroke:{stroke},color:#000")
        members = [ids[a] for a in order if classes.get(a) == name]
        lines.append(f"    class {','.join(members)} {_class_id(name)}")
    if clones:
        if classes:
            for addr in clones:
                lines.append(f"    style {ids[addr]} stroke:{CLONE_STROKE},stroke-width:{CLONE_WIDTH}px")
        else:
            lines.append(f"    classDef clone fill:{CLONE_FILL},stroke:{CLONE_STROKE},stroke-width:{CLONE_WIDTH}px")
            lines.append(f"    class {','.join(ids[a] for a in clones)} clone")
    if styles or clones:
        lines.append("    subgraph legend [Legend]")
        lines.append("        direction LR")
        for name in styles:
            lines.append(f'        legend_{_class_id(name)}["{name}"]:::{_class_id(name)}')
        if clones:
            fill = "#fff" if classes else CLONE_FILL
            lines.append(f'        legend_clone["{CLONE_LEGEND}"]')
            lines.append(f"        style legend_clone fill:{fill},stroke:{CLONE_STROKE},stroke-width:{CLONE_WIDTH}px")
        lines.append("    end")
    return "\n".join(lines) + "\n"


# --- dot ---------------------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(graph: StageGraph, colors: Mapping[str, str] | None) -> str:
    order = graph.topological()
    classes = _used_classes(graph, colors)
    styles = styles_for(set(classes.values()))
    lines = [
        "digraph mactl {",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#333333", fontname="Helvetica"];',
    ]
    for addr in order:
        stage = graph.stages[addr]
        attrs: list[str] = []
        if stage.approval_required:
            attrs += ["shape=hexagon", f"xlabel={_q('approval required')}"]
        cls = classes.get(addr)
        if cls is not None:
            fill, stroke = styles[cls]
            attrs += [f"fillcolor={_q(fill)}", f"color={_q(stroke)}", f"class={_q(cls)}"]
        if stage.clone_of:
            if cls is None:
                attrs += [f"fillcolor={_q('#dddddd')}"]
            attrs += [f"penwidth={CLONE_WIDTH}"]
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {_q(addr)}{suffix};")
    for addr in order:
        for dep in sorted(graph.stages[addr].depends_on):
            lines.append(f"    {_q(dep)} -> {_q(addr)};")
    clones = any(graph.stages[a].clone_of for a in order)
    if styles or clones:
        lines.append("    subgraph cluster_legend {")
        lines.append(f"        label={_q('Legend')};")
        for name, (fill, stroke) in styles.items():
            lines.append(
                f"        {_q('legend:' + name)} [label={_q(name)}, fillcolor={_q(fill)}, color={_q(stroke)}];"
            )
        if clones:
            fill = "#ffffff" if classes else "#dddddd"
            lines.append(
                f"        {_q('legend:clone')} [label={_q(CLONE_LEGEND)}, fillcolor={_q(fill)}, penwidth={CLONE_WIDTH}];"
            )
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- json --------------------------------------------------------------------------

JSON_FORMAT_VERSION = "1"


def graph_document(graph: StageGraph, colors: Mapping[str, str] | None = None) -> dict[str, object]:
    """The graph as plain data (what `--format json` prints)."""
    order = graph.topological()
    classes = _used_classes(graph, colors)
    styles = styles_for(set(classes.values()))
    nodes = []
    for addr in order:
        stage = graph.stages[addr]
        node: dict[str, object] = {
            "address": addr,
            "type": stage.type,
            "depends_on": sorted(stage.depends_on),
            "clone_of": stage.clone_of,
            "approval_required": stage.approval_required,
            "description": stage.description,
        }
        if classes:
            node["class"] = classes.get(addr)
        nodes.append(node)
    edges = [{"from": dep, "to": addr} for addr in order for dep in sorted(graph.stages[addr].depends_on)]
    return {
        "format_version": JSON_FORMAT_VERSION,
        "nodes": nodes,
        "edges": edges,
        "legend": {name: {"fill": fill, "stroke": stroke} for name, (fill, stroke) in styles.items()},
    }


def _json(graph: StageGraph, colors: Mapping[str, str] | None) -> str:
    return json.dumps(graph_document(graph, colors), indent=2) + "\n"
