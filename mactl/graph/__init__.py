"""The stage graph: expands the canonical config into a DAG of `Stage`s and renders it.

It must not read or write state, nor talk to clusters: it is a pure function of the
config. Planning (what changes) lives in `mactl.plan`; running lives in `mactl.apply`.

    from mactl.graph.expand import expand
    graph = expand(loaded.config)
    print(render_graph(graph, "mermaid"))

`StageGraph` and `render_graph` are imported lazily: `Stage` is a contract type many
layers import, and it must not drag the config loader in with it. (`expand` is not
re-exported: the name is taken by its module, `mactl.graph.expand`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mactl.graph.stage import Lifecycle, Stage

if TYPE_CHECKING:
    from mactl.graph.expand import StageGraph
    from mactl.graph.render import render_graph

_LAZY = {"StageGraph": "mactl.graph.expand", "render_graph": "mactl.graph.render"}

__all__ = ["Lifecycle", "Stage", "StageGraph", "render_graph"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mactl.graph' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
