"""The stage graph: expands the canonical config into a DAG of `Stage`s and renders it.

It must not read or write state, nor talk to clusters: it is a pure function of the
config. Planning (what changes) lives in `mactl.plan`; running lives in `mactl.apply`.
"""

from mactl.graph.stage import Lifecycle, Stage

__all__ = ["Lifecycle", "Stage"]
