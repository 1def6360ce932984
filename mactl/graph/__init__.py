"""The stage graph: expands the canonical config into a DAG of `Stage`s and renders it.

It must not read or write state, nor talk to clusters: it is a pure function of the
config. Planning (what changes) lives in `mactl.plan`; running lives in `mactl.apply`.

    from mactl.graph.expand import expand
    from mactl.graph.render import render_graph
    graph = expand(loaded.config)
    print(render_graph(graph, "mermaid"))

`Stage` (in `mactl.graph.stage`) is the contract type many layers read; importing this
package loads only it, never the expander (which needs the config models).
"""

from __future__ import annotations

from mactl.graph.stage import Lifecycle, Stage

__all__ = ["Lifecycle", "Stage"]
